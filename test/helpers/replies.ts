// Replies as a worker sends them, for tests that drive executions through applyReplies
// without Kafka.
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { ReplyTopicMessage } from '../../src/control-plane/apply-reply.js';
import type { Database } from '../../src/db/schema.js';

/** An attempt as a worker knows it from its command. */
export interface AttemptRef {
  readonly id: string;
  readonly execution_id: string;
  readonly step_key: string;
}

/** The attempts of these executions waiting for a worker (status 'scheduled'), by execution. */
export async function scheduledAttempts(db: Kysely<Database>, executionIds: readonly string[]): Promise<AttemptRef[]> {
  const { rows } = await sql<AttemptRef>`
    SELECT id, execution_id, step_key FROM sous.step_attempt
    WHERE execution_id = ANY(${[...executionIds]}::uuid[]) AND status = 'scheduled'
    ORDER BY execution_id, step_key`.execute(db);
  return rows;
}

/** A step.completed reply to an attempt, with a message id of its own. */
export function completedReply(attempt: Omit<AttemptRef, 'step_key'>, output: unknown): ReplyTopicMessage {
  return {
    kind: 'step.completed',
    messageId: randomUUID(),
    executionId: attempt.execution_id,
    stepExecutionId: attempt.id,
    workerId: 'w',
    at: new Date().toISOString(),
    output,
  };
}
