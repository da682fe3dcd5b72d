import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { Caller } from './auth.js';

export type AuditOutcome = 'ok' | 'error' | 'denied';

/** One row of sous.audit_log: who did what, when, with which arguments, and how it ended. */
export async function writeAudit(
  db: Kysely<Database>,
  caller: Caller,
  operation: string,
  args: unknown,
  outcome: AuditOutcome,
  errorCode?: string,
): Promise<void> {
  await sql`
    INSERT INTO sous.audit_log (token_id, actor, role, operation, arguments, outcome, error_code)
    VALUES (${caller.tokenId}, ${caller.name}, ${caller.role}, ${operation}, ${JSON.stringify(args ?? {})}::jsonb,
      ${outcome}, ${errorCode ?? null})`.execute(db);
}
