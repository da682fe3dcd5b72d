import { newId } from '../uuid.js';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { SousError } from '../errors.js';
import { OUTBOX_HEADERS } from '../kafka/outbox-record.js';
import { writeOutbox } from '../outbox/write-outbox.js';
import { stepCommandSchema } from '../protocol/messages.js';
import {
  lockDeadLetter,
  markDeadLetterReprocessed,
  markDeadLettersDiscarded,
  selectDeadLetterStatuses,
  selectPendingDeadLetters,
} from '../store/dead-letters.js';
import { auditedTransaction, type AuditHook } from '../store/audit.js';
import { isUuid } from '../uuid.js';
import { runDecision, type DecisionEnvironment } from './run-decision.js';

/** The dead letter cannot be reprocessed as it is (not JSON, already resolved, unknown). */
export class DeadLetterNotReprocessableError extends SousError {
  readonly code = 'SOUS_DEAD_LETTER_NOT_REPROCESSABLE';
  readonly retryable = false;
}

/** Which dead letters an action applies to: explicit ids, or a filter over pending ones. */
export interface DeadLetterSelection {
  readonly ids?: readonly string[];
  readonly capability?: string;
  readonly errorCode?: string;
  readonly originalTopic?: string;
  readonly executionId?: string;
}

/**
 * The pending dead letters selected. Explicit ids must all name pending letters, or the
 * action is refused whole (listing the ids at fault) before anything changes.
 */
async function selectIds(db: Kysely<Database>, selection: DeadLetterSelection): Promise<string[]> {
  if (selection.ids !== undefined) {
    const malformed = selection.ids.filter((id) => !isUuid(id));
    if (malformed.length > 0) {
      throw new DeadLetterNotReprocessableError(`not dead-letter ids (UUIDs expected): ${malformed.join(', ')}`);
    }
    const found = await selectDeadLetterStatuses(db, selection.ids);
    const problems = selection.ids.flatMap((id) => {
      const status = found.get(id.toLowerCase());
      if (status === undefined) return [`${id}: no such dead letter`];
      return status === 'pending' ? [] : [`${id}: already ${status}`];
    });
    if (problems.length > 0) throw new DeadLetterNotReprocessableError(problems.join('; '));
    return selection.ids.map((id) => id.toLowerCase());
  }
  return selectPendingDeadLetters(db, {
    ...(selection.capability === undefined ? {} : { capability: selection.capability }),
    ...(selection.errorCode === undefined ? {} : { errorCode: selection.errorCode }),
    ...(selection.originalTopic === undefined ? {} : { originalTopic: selection.originalTopic }),
    ...(selection.executionId === undefined ? {} : { executionId: selection.executionId }),
  });
}

export interface ReprocessOutcome {
  readonly deadLetterId: string;
  /** The outbox message that carries the record again. */
  readonly messageId: string;
  /** The dead-lettered step was waiting for this and is in flight again. */
  readonly stepRequeued: boolean;
}

/**
 * Publishes dead letters again through the outbox, to their original topic with their
 * original key and idempotency key (so an exactly-once handler still applies its effect
 * once), optionally with a replacement payload; a parked step goes back in flight in
 * the same transaction. Each letter is its own transaction; a letter already resolved
 * is refused, so reprocessing twice publishes once. `audit` commits with the last letter:
 * its row says the whole selection was reprocessed (each letter also names its `actor`).
 * With nothing selected nothing changes, and the caller audits on its own.
 */
export async function reprocessDeadLetters(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  selection: DeadLetterSelection,
  actor: string,
  replacementPayload?: unknown,
  audit?: AuditHook,
): Promise<ReprocessOutcome[]> {
  const ids = await selectIds(db, selection);
  const outcomes: ReprocessOutcome[] = [];
  for (const [i, id] of ids.entries()) {
    outcomes.push(
      await auditedTransaction(db, i === ids.length - 1 ? audit : undefined, async (trx) => {
        const letter = await lockDeadLetter(trx, id);
        if (letter === undefined) throw new DeadLetterNotReprocessableError(`no dead letter ${id}`);
        if (letter.status !== 'pending') {
          throw new DeadLetterNotReprocessableError(`dead letter ${id} is already ${letter.status}`);
        }
        const payload = replacementPayload ?? letter.payload;
        if (payload === null || payload === undefined) {
          throw new DeadLetterNotReprocessableError(
            `dead letter ${id} holds no JSON value (${JSON.stringify((letter.payload_text ?? '').slice(0, 40))}…): give a replacement payload`,
          );
        }
        const messageId = newId();
        const headers = letter.headers;
        await writeOutbox(trx, [
          {
            id: messageId,
            topic: letter.original_topic,
            key: letter.message_key ?? letter.execution_id ?? id,
            aggregateType: 'dead-letter',
            eventType: headers[OUTBOX_HEADERS.eventType] ?? 'reprocessed',
            payload,
            ...(headers[OUTBOX_HEADERS.traceparent] === undefined
              ? {}
              : { traceparent: headers[OUTBOX_HEADERS.traceparent] }),
            ...(headers[OUTBOX_HEADERS.correlationId] === undefined
              ? {}
              : { correlationId: headers[OUTBOX_HEADERS.correlationId] }),
            ...(letter.idempotency_key === null ? {} : { idempotencyKey: letter.idempotency_key }),
            headers: { 'sous-reprocessed-dead-letter': id },
          },
        ]);
        let stepRequeued = false;
        const command = stepCommandSchema.safeParse(payload);
        if (command.success) {
          const executionId = command.data.executionId.toLowerCase();
          const locked = (await env.states.lock(trx, env.plans, [executionId])).get(executionId);
          if (locked !== undefined) {
            const decision = await runDecision(
              trx,
              env,
              executionId,
              { kind: 'requeue', stepExecutionId: command.data.stepExecutionId },
              { locked },
            );
            stepRequeued = decision.events.some((e) => e.type === 'StepRequeued');
          }
        }
        const outcome = { messageId, stepRequeued, payloadReplaced: replacementPayload !== undefined };
        await markDeadLetterReprocessed(trx, id, actor, outcome);
        return { deadLetterId: id, messageId, stepRequeued };
      }),
    );
  }
  return outcomes;
}

/** Marks dead letters as dealt with, without publishing anything. */
export async function discardDeadLetters(
  db: Kysely<Database>,
  selection: DeadLetterSelection,
  actor: string,
  audit?: AuditHook,
): Promise<string[]> {
  const ids = await selectIds(db, selection);
  return auditedTransaction(db, audit, (trx) => markDeadLettersDiscarded(trx, ids, actor));
}
