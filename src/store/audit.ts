import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** One row of sous.audit_log. */
export interface AuditEntry {
  readonly tokenId: string;
  readonly actor: string;
  readonly role: string;
  readonly operation: string;
  readonly arguments: unknown;
  readonly outcome: 'ok' | 'error' | 'denied';
  readonly errorCode: string | null;
}

export async function insertAuditEntry(db: Kysely<Database>, entry: AuditEntry): Promise<void> {
  await sql`
    INSERT INTO sous.audit_log (token_id, actor, role, operation, arguments, outcome, error_code)
    VALUES (${entry.tokenId}, ${entry.actor}, ${entry.role}, ${entry.operation},
      ${JSON.stringify(entry.arguments ?? {})}::jsonb, ${entry.outcome}, ${entry.errorCode})`.execute(db);
}
