import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { insertAuditEntry } from '../store/audit.js';
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
  await insertAuditEntry(db, {
    tokenId: caller.tokenId,
    actor: caller.name,
    role: caller.role,
    operation,
    arguments: args,
    outcome,
    errorCode: errorCode ?? null,
  });
}
