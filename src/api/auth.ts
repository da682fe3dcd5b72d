import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { ForbiddenError, TokenExistsError, UnauthenticatedError } from './errors.js';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling: the token's name and role. */
export interface Caller {
  readonly tokenId: string;
  readonly name: string;
  readonly role: Role;
}

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Throws ForbiddenError unless the caller's role is `needed` or above. */
export function requireRole(caller: Caller, needed: Role, operation: string): void {
  if (RANK[caller.role] < RANK[needed]) {
    throw new ForbiddenError(`${operation} needs the ${needed} role; token "${caller.name}" is ${caller.role}`);
  }
}

/** Only the SHA-256 of a token is stored: a leaked table does not leak tokens. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Creates a token; returns its secret, which is not stored and cannot be shown again. */
export async function createApiToken(
  db: Kysely<Database>,
  name: string,
  role: Role,
  createdBy: string,
): Promise<{ name: string; role: Role; token: string }> {
  const token = `sous_${randomBytes(32).toString('base64url')}`;
  const inserted = await sql`
    INSERT INTO sous.api_token (id, name, role, token_hash, created_by)
    VALUES (${randomUUID()}, ${name}, ${role}, ${hashToken(token)}, ${createdBy})
    ON CONFLICT (name) DO NOTHING RETURNING 1`.execute(db);
  if (inserted.rows.length === 0) throw new TokenExistsError(`a token named "${name}" exists already`);
  return { name, role, token };
}

export async function revokeApiToken(db: Kysely<Database>, name: string): Promise<boolean> {
  const { rows } = await sql`
    UPDATE sous.api_token SET revoked_at = now() WHERE name = ${name} AND revoked_at IS NULL RETURNING 1`.execute(db);
  return rows.length > 0;
}

/** The caller of an `Authorization: Bearer <token>` value; UnauthenticatedError otherwise. */
export async function authenticate(db: Kysely<Database>, authorization: string | undefined): Promise<Caller> {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization?.trim() ?? '');
  const token = match?.[1];
  if (token === undefined) {
    throw new UnauthenticatedError('send an API token as "Authorization: Bearer <token>"');
  }
  const { rows } = await sql<{ id: string; name: string; role: Role; stale: boolean }>`
    SELECT id, name, role, (last_used_at IS NULL OR last_used_at < now() - interval '1 minute') AS stale
    FROM sous.api_token WHERE token_hash = ${hashToken(token)} AND revoked_at IS NULL`.execute(db);
  const row = rows[0];
  if (row === undefined) throw new UnauthenticatedError('the API token is unknown or revoked');
  // At most once a minute per token: a busy token must not serialise requests on its row.
  if (row.stale) await sql`UPDATE sous.api_token SET last_used_at = now() WHERE id = ${row.id}`.execute(db);
  return { tokenId: row.id, name: row.name, role: row.role };
}
