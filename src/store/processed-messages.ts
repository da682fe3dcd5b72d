import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** A reply to be applied once: its message id and the execution it names. */
export interface ReplyIdentity {
  readonly messageId: string;
  readonly executionId: string;
}

/**
 * Records replies as processed, in one statement, and returns the message ids that were
 * new: a reply delivered again (by Kafka, or to another control-plane process) finds its
 * id and is skipped. Run it after locking the replies' executions: a twin transaction
 * holding the same reply then waits on the lock, not on this insert, so the two cannot
 * deadlock, and sees the id once the first commits.
 */
export async function recordProcessedMessages(
  trx: Kysely<Database>,
  replies: readonly ReplyIdentity[],
): Promise<Set<string>> {
  if (replies.length === 0) return new Set();
  const { rows } = await sql<{ message_id: string }>`/* sous:recordProcessedMessages */
    INSERT INTO sous.processed_message (message_id, execution_id)
    SELECT * FROM unnest(${replies.map((r) => r.messageId)}::uuid[], ${replies.map((r) => r.executionId)}::uuid[])
    ON CONFLICT (message_id) DO NOTHING RETURNING message_id`.execute(trx);
  return new Set(rows.map((r) => r.message_id));
}
