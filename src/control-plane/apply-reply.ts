import type { Context } from '@opentelemetry/api';
import { residentClaimCheck } from '../protocol/resident.js';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Database } from '../db/schema.js';
import type { Trigger } from '../engine/triggers.js';
import { childFinishedMessageSchema } from '../protocol/control-messages.js';
import { stepReplySchema } from '../protocol/messages.js';
import { ExecutionNotFoundError, ReplyInvalidError } from './errors.js';
import { selectPayloads } from '../store/payloads.js';
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

/**
 * The trigger of a reply. An output sent by reference (`outputRef`) is the stored payload
 * (`payloads`, read in the reply's transaction): decisions, expressions and the execution's
 * output see the value, never the reference. A reference to no payload fails the attempt
 * (retryable: a new attempt stores its output again) rather than completing it with null.
 */
export function triggerOf(message: ReplyTopicMessage, payloads: ReadonlyMap<string, unknown> = new Map()): Trigger {
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
    case 'step.completed': {
      const resident = message.outputRef?.region;
      if (message.outputRef !== undefined && resident !== undefined) {
        // Resident in another region: the claim check is the output; the data stays there.
        return {
          kind: 'step.completed',
          stepExecutionId: message.stepExecutionId,
          output: residentClaimCheck(message.outputRef.ref.toLowerCase(), resident, message.outputRef.bytes),
          ...startOf(message),
        };
      }
      const ref = message.outputRef?.ref.toLowerCase();
      if (ref !== undefined && !payloads.has(ref)) {
        return {
          kind: 'step.failed',
          stepExecutionId: message.stepExecutionId,
          error: {
            code: OUTPUT_UNAVAILABLE,
            message: `the output of attempt ${message.stepExecutionId} was sent by reference to payload ${ref}, which does not exist`,
            retryable: true,
          },
          ...startOf(message),
        };
      }
      return {
        kind: 'step.completed',
        stepExecutionId: message.stepExecutionId,
        output: ref === undefined ? (message.output ?? null) : (payloads.get(ref) ?? null),
        ...startOf(message),
      };
    }
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

/** Error code of an attempt whose output reference names no stored payload. */
export const OUTPUT_UNAVAILABLE = 'output_unavailable';

/** The payloads the replies' output references name, read once for a batch. */
async function referencedOutputs(
  trx: Kysely<Database>,
  messages: readonly ReplyTopicMessage[],
): Promise<Map<string, unknown>> {
  const refs = messages.flatMap((m) =>
    m.kind === 'step.completed' && m.outputRef && m.outputRef.region === undefined ? [m.outputRef.ref] : [],
  );
  return selectPayloads(trx, refs);
}

/** The attempt's start a final reply carries (a short command's only reply): who and when. */
function startOf(message: { startedAt?: string | undefined; workerId: string }) {
  return message.startedAt === undefined ? {} : { startedAt: message.startedAt, workerId: message.workerId };
}

export type ReplyOutcome = 'applied' | 'duplicate';

/**
 * Applies one reply in one transaction: runs the decision it triggers under the
 * execution's lock ('duplicate' when it changed nothing; see applyReplies).
 */
export async function applyReply(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  message: ReplyTopicMessage,
  /** The reply's CONSUMER span: its decision's parent. */
  parent?: Context,
): Promise<ReplyOutcome> {
  const outcome = await applyReplies(
    db,
    env,
    [message],
    parent === undefined ? undefined : new Map([[message, parent]]),
  );
  if (outcome.unknown.length > 0) throw unknownExecution(message);
  return outcome.applied === 1 ? 'applied' : 'duplicate';
}

/** The error of a reply that names no execution. */
export function unknownExecution(message: ReplyTopicMessage): ExecutionNotFoundError {
  return new ExecutionNotFoundError(`reply ${message.messageId} names unknown execution ${message.executionId}`);
}

export interface BatchOutcome {
  /** Replies that changed their execution. */
  readonly applied: number;
  /** Replies that changed nothing: delivered before, or stale (their attempt moved on). */
  readonly duplicates: number;
  /** Replies naming no execution: nothing was written for them (the caller dead-letters them). */
  readonly unknown: readonly ReplyTopicMessage[];
}

/**
 * Applies several replies in one transaction — one commit (one WAL flush) instead of one
 * per reply — each exactly as `applyReply` would, in order, with a fixed number of
 * statements whatever the number of replies: lock the replies' executions (in id order),
 * decide in memory, then write every table once. If anything fails the whole transaction
 * rolls back and nothing of the batch is applied, so the caller can retry the batch or
 * fall back to one reply at a time.
 *
 * A reply delivered again (by Kafka, to another control-plane process, or sent twice by a
 * worker, at another offset) is recognised by the state it finds under the lock: the
 * attempt it names is no longer in the status that reply moves it from (a started attempt
 * is not started again, a finished one not finished again), and a sub-recipe's step is no
 * longer open for its child's end. So these replies need no row of their own. Heartbeats
 * are the exception: one arriving twice would re-arm the heartbeat timeout twice, so their
 * message ids are still recorded in sous.processed_message.
 */
export async function applyReplies(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  messages: readonly ReplyTopicMessage[],
  /** Per reply, its CONSUMER span: the parent of the decision it triggers. @default the execution's trace */
  parents?: ReadonlyMap<ReplyTopicMessage, Context>,
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
    const locked = await env.states.lock(trx, env.plans, [
      ...new Set([...distinct.values()].map((m) => m.executionId.toLowerCase())),
    ]);
    const known: ReplyTopicMessage[] = [];
    for (const message of distinct.values()) {
      if (locked.has(message.executionId.toLowerCase())) known.push(message);
      else unknown.push(message);
    }
    const heartbeats = known.filter((m) => m.kind === 'step.heartbeat');
    const freshHeartbeats =
      heartbeats.length === 0 ? new Set<string>() : await recordProcessedMessages(trx, heartbeats);
    // Replies grouped by execution, each group in arrival order: one execution's replies
    // are decided in turn, with one state write for the group.
    const groups = new Map<string, { triggers: Trigger[]; parents: (Context | undefined)[] }>();
    const payloads = await referencedOutputs(trx, known);
    let decided = 0;
    for (const message of known) {
      if (message.kind === 'step.heartbeat' && !freshHeartbeats.has(message.messageId.toLowerCase())) {
        duplicates++;
        continue;
      }
      const executionId = message.executionId.toLowerCase();
      const group = groups.get(executionId) ?? { triggers: [], parents: [] };
      group.triggers.push(triggerOf(message, payloads));
      group.parents.push(parents?.get(message));
      groups.set(executionId, group);
      decided++;
    }
    let ignored = 0;
    if (groups.size > 0) {
      ({ ignored } = await runDecisions(
        trx,
        env,
        locked,
        [...groups].map(([executionId, { triggers, parents: contexts }]) => ({
          executionId,
          triggers,
          parents: contexts,
        })),
      ));
    }
    return { applied: decided - ignored, duplicates: duplicates + ignored, unknown };
  });
}
