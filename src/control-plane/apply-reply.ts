import { sql, type Kysely } from 'kysely';
import { z } from 'zod';
import type { Database } from '../db/schema.js';
import type { Trigger } from '../engine/triggers.js';
import { childFinishedMessageSchema } from '../protocol/control-messages.js';
import { stepReplySchema } from '../protocol/messages.js';
import { ExecutionNotFoundError, ReplyInvalidError } from './errors.js';
import { runDecisions, type DecisionEnvironment } from './run-decision.js';

/** Everything the control plane accepts on its reply topic. */
export const replyTopicMessageSchema = z.union([stepReplySchema, childFinishedMessageSchema]);
export type ReplyTopicMessage = z.infer<typeof replyTopicMessageSchema>;

export function parseReply(value: unknown): ReplyTopicMessage {
  // By kind, so the error names the fields of the message meant, not the union's "Invalid input".
  const kind = typeof value === 'object' && value !== null && 'kind' in value ? value.kind : undefined;
  const parsed = (kind === 'child.finished' ? childFinishedMessageSchema : stepReplySchema).safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ReplyInvalidError(`invalid reply: ${problems.join('; ')}`, { cause: parsed.error });
  }
  return parsed.data;
}

export function triggerOf(message: ReplyTopicMessage): Trigger {
  switch (message.kind) {
    case 'step.started':
      return {
        kind: 'step.started',
        stepExecutionId: message.stepExecutionId,
        workerId: message.workerId,
        ...(message.startedAt === undefined ? {} : { startedAt: message.startedAt }),
      };
    case 'step.heartbeat':
      return { kind: 'step.heartbeat', stepExecutionId: message.stepExecutionId, progress: message.progress };
    case 'step.completed':
      return {
        kind: 'step.completed',
        stepExecutionId: message.stepExecutionId,
        output: message.output ?? null,
        ...startOf(message),
      };
    case 'step.failed':
      return {
        kind: 'step.failed',
        stepExecutionId: message.stepExecutionId,
        error: message.error,
        ...(message.deadLettered === true ? { deadLettered: true } : {}),
        ...startOf(message),
      };
    case 'child.finished':
      return {
        kind: 'child.finished',
        childExecutionId: message.childExecutionId,
        status: message.status,
        ...(message.output === undefined ? {} : { output: message.output }),
        ...(message.error === undefined ? {} : { error: message.error }),
      };
  }
}

/** The attempt's start a final reply carries (a short command's only reply): who and when. */
function startOf(message: { startedAt?: string | undefined; workerId: string }) {
  return message.startedAt === undefined ? {} : { startedAt: message.startedAt, workerId: message.workerId };
}

export type ReplyOutcome = 'applied' | 'duplicate';

/**
 * Applies one reply in one transaction: records its message id (a redelivered reply
 * finds it and changes nothing), then runs the decision it triggers.
 */
export async function applyReply(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  message: ReplyTopicMessage,
): Promise<ReplyOutcome> {
  const outcome = await applyReplies(db, env, [message]);
  if (outcome.unknown.length > 0) throw unknownExecution(message);
  return outcome.applied === 1 ? 'applied' : 'duplicate';
}

/** The error of a reply that names no execution. */
export function unknownExecution(message: ReplyTopicMessage): ExecutionNotFoundError {
  return new ExecutionNotFoundError(`reply ${message.messageId} names unknown execution ${message.executionId}`);
}

export interface BatchOutcome {
  readonly applied: number;
  readonly duplicates: number;
  /** Replies naming no execution: nothing was written for them (the caller dead-letters them). */
  readonly unknown: readonly ReplyTopicMessage[];
}

/**
 * Applies several replies in one transaction — one commit (one WAL flush) instead of one
 * per reply — each exactly as `applyReply` would, in order. If anything fails the whole
 * transaction rolls back and nothing of the batch is applied, so the caller can retry the
 * batch or fall back to one reply at a time.
 */
export async function applyReplies(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  messages: readonly ReplyTopicMessage[],
): Promise<BatchOutcome> {
  return db.transaction().execute(async (trx) => {
    let duplicates = 0;
    const unknown: ReplyTopicMessage[] = [];
    // Fresh replies grouped by execution, each group in arrival order: one execution's
    // replies are decided in turn under one lock with one state write (runDecisions).
    const groups = new Map<string, Trigger[]>();
    for (const message of messages) {
      const exists = await sql`SELECT 1 FROM sous.execution WHERE id = ${message.executionId}`.execute(trx);
      if (exists.rows.length === 0) {
        unknown.push(message);
        continue;
      }
      const fresh = await sql`
        INSERT INTO sous.processed_message (message_id, execution_id) VALUES (${message.messageId}, ${message.executionId})
        ON CONFLICT (message_id) DO NOTHING RETURNING 1`.execute(trx);
      if (fresh.rows.length === 0) {
        duplicates++;
        continue;
      }
      const group = groups.get(message.executionId) ?? [];
      group.push(triggerOf(message));
      groups.set(message.executionId, group);
    }
    let applied = 0;
    for (const [executionId, triggers] of groups) {
      await runDecisions(trx, env, executionId, triggers);
      applied += triggers.length;
    }
    return { applied, duplicates, unknown };
  });
}
