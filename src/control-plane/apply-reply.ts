import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Database } from '../db/schema.js';
import type { Trigger } from '../engine/triggers.js';
import { childFinishedMessageSchema } from '../protocol/control-messages.js';
import { stepReplySchema } from '../protocol/messages.js';
import { ExecutionNotFoundError, ReplyInvalidError } from './errors.js';
import { lockExecutions } from '../store/executions.js';
import { recordProcessedMessages } from '../store/processed-messages.js';
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
 * per reply — each exactly as `applyReply` would, in order, with a fixed number of
 * statements whatever the number of replies: lock the replies' executions (in id order),
 * record the message ids (a reply seen before changes nothing), decide in memory, then
 * write every table once. If anything fails the whole transaction rolls back and nothing
 * of the batch is applied, so the caller can retry the batch or fall back to one reply
 * at a time.
 */
export async function applyReplies(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  messages: readonly ReplyTopicMessage[],
): Promise<BatchOutcome> {
  return db.transaction().execute(async (trx) => {
    let duplicates = 0;
    const unknown: ReplyTopicMessage[] = [];
    // A reply twice in one batch counts once (the second is a duplicate, as in a later batch).
    // Ids compare as PostgreSQL returns them (lower case): a UUID may arrive in either case.
    const distinct = new Map<string, ReplyTopicMessage>();
    for (const message of messages) {
      const id = message.messageId.toLowerCase();
      if (distinct.has(id)) duplicates++;
      else distinct.set(id, message);
    }
    const locked = await lockExecutions(trx, [
      ...new Set([...distinct.values()].map((m) => m.executionId.toLowerCase())),
    ]);
    const known: ReplyTopicMessage[] = [];
    for (const message of distinct.values()) {
      if (locked.has(message.executionId.toLowerCase())) known.push(message);
      else unknown.push(message);
    }
    const fresh = await recordProcessedMessages(trx, known);
    // Fresh replies grouped by execution, each group in arrival order: one execution's
    // replies are decided in turn, with one state write for the group.
    const groups = new Map<string, Trigger[]>();
    for (const message of known) {
      if (!fresh.has(message.messageId.toLowerCase())) {
        duplicates++;
        continue;
      }
      const executionId = message.executionId.toLowerCase();
      const group = groups.get(executionId) ?? [];
      group.push(triggerOf(message));
      groups.set(executionId, group);
    }
    let applied = 0;
    for (const triggers of groups.values()) applied += triggers.length;
    if (groups.size > 0) {
      await runDecisions(
        trx,
        env,
        locked,
        [...groups].map(([executionId, triggers]) => ({ executionId, triggers })),
      );
    }
    return { applied, duplicates, unknown };
  });
}
