import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** Stores a token's hash under a name; false when the name is taken. */
export async function insertApiToken(
  db: Kysely<Database>,
  token: { id: string; name: string; role: string; tokenHash: string; createdBy: string },
): Promise<boolean> {
  const { rows } = await sql`
    INSERT INTO sous.api_token (id, name, role, token_hash, created_by)
    VALUES (${token.id}, ${token.name}, ${token.role}, ${token.tokenHash}, ${token.createdBy})
    ON CONFLICT (name) DO NOTHING RETURNING 1`.execute(db);
  return rows.length > 0;
}

/** Revokes the live token of that name; false when there is none. */
export async function revokeApiTokenNamed(db: Kysely<Database>, name: string): Promise<boolean> {
  const { rows } = await sql`
    UPDATE sous.api_token SET revoked_at = now() WHERE name = ${name} AND revoked_at IS NULL RETURNING 1`.execute(db);
  return rows.length > 0;
}

/** The live token with this hash, and whether its last use is older than a minute. */
export async function selectLiveToken(
  db: Kysely<Database>,
  tokenHash: string,
): Promise<{ id: string; name: string; role: string; stale: boolean } | undefined> {
  const { rows } = await sql<{ id: string; name: string; role: string; stale: boolean }>`
    SELECT id, name, role, (last_used_at IS NULL OR last_used_at < now() - interval '1 minute') AS stale
    FROM sous.api_token WHERE token_hash = ${tokenHash} AND revoked_at IS NULL`.execute(db);
  return rows[0];
}

/** Records that a token was used now. */
export async function touchApiToken(db: Kysely<Database>, id: string): Promise<void> {
  await sql`UPDATE sous.api_token SET last_used_at = now() WHERE id = ${id}`.execute(db);
}
