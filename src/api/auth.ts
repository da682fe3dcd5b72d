import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { insertApiToken, revokeApiTokenNamed, selectLiveToken, touchApiToken } from '../store/api-tokens.js';
import { auditedTransaction, type AuditHook } from '../store/audit.js';
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
  audit?: AuditHook,
): Promise<{ name: string; role: Role; token: string }> {
  const token = `sous_${randomBytes(32).toString('base64url')}`;
  // The refusal is in the transaction: no audit row commits with a token not created.
  await auditedTransaction(db, audit, async (trx) => {
    const inserted = await insertApiToken(trx, {
      id: randomUUID(),
      name,
      role,
      tokenHash: hashToken(token),
      createdBy,
    });
    if (!inserted) throw new TokenExistsError(`a token named "${name}" exists already`);
  });
  return { name, role, token };
}

export async function revokeApiToken(db: Kysely<Database>, name: string, audit?: AuditHook): Promise<boolean> {
  return auditedTransaction(db, audit, (trx) => revokeApiTokenNamed(trx, name));
}

/** The caller of an `Authorization: Bearer <token>` value; UnauthenticatedError otherwise. */
export async function authenticate(db: Kysely<Database>, authorization: string | undefined): Promise<Caller> {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization?.trim() ?? '');
  const token = match?.[1];
  if (token === undefined) {
    throw new UnauthenticatedError('send an API token as "Authorization: Bearer <token>"');
  }
  const row = await selectLiveToken(db, hashToken(token));
  if (row === undefined) throw new UnauthenticatedError('the API token is unknown or revoked');
  // At most once a minute per token: a busy token must not serialise requests on its row.
  if (row.stale) await touchApiToken(db, row.id);
  // The table's CHECK allows only ROLES.
  return { tokenId: row.id, name: row.name, role: row.role as Role };
}
