import { newId } from '../uuid.js';
import type { Task } from 'graphile-worker';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Database } from '../db/schema.js';
import { SousError } from '../errors.js';
import {
  completeDeadLetterJobIfDone,
  deadLetterIdProblems,
  enqueueDeadLetterJobBatch,
  finishDeadLetterJobItem,
  insertDeadLetterJob,
  lockDeadLetterJobCreation,
  markDeadLetterJobRunning,
  recordDeadLetterJobError,
  selectDeadLetterJob,
  selectDeadLetterResolution,
  selectPendingDeadLetterJobItems,
  selectStaleDeadLetterJobIds,
  touchDeadLetterJob,
  type DeadLetterJobRow,
} from '../store/dead-letter-jobs.js';
import { auditedTransaction, type AuditHook } from '../store/audit.js';
import { isUuid } from '../uuid.js';
import { DeadLetterNotReprocessableError, reprocessDeadLetters, type DeadLetterSelection } from './dead-letters.js';
import type { DecisionEnvironment } from './run-decision.js';

/*
 * The DLT reprocessing job: reprocessing thousands of dead letters is too long for one
 * request, so the request only records the job (the selected dead letters, as items) and
 * adds a graphile-worker job in the same transaction. Each run of that job reprocesses one
 * bounded batch through the ordinary per-letter path, then adds the run for the next batch.
 *
 * Retry safety: each letter is reprocessed under the actor `<who> (dead-letter job <id>)`.
 * A crash between publishing a letter and recording its item leaves a pending item whose
 * letter is already `reprocessed` by that actor: the next run records it as done without
 * publishing it again. Anything else that resolved the letter in between makes the item
 * failed, never a second publication (the letter's row lock and status see to that).
 */

/** graphile-worker task that runs one batch of a DLT reprocessing job. */
export const DEAD_LETTER_JOB_TASK = 'sous_dead_letter_job';

/** Dead letters one run of the job reprocesses before handing over to the next run. @default 100 */
export const DEFAULT_DEAD_LETTER_JOB_BATCH = 100;

/** A job that has not progressed for this long lost its worker and is started again. */
export const STALE_DEAD_LETTER_JOB_MS = 60_000;

/** No DLT reprocessing job has this id. */
export class DeadLetterJobNotFoundError extends SousError {
  readonly code = 'SOUS_DEAD_LETTER_JOB_NOT_FOUND';
  readonly retryable = false;
}

/** The actor a job reprocesses its letters as: who started it, and which job it is. */
export const deadLetterJobActor = (job: { id: string; created_by: string }): string =>
  `${job.created_by} (dead-letter job ${job.id})`;

export interface StartDeadLetterJobOptions {
  readonly selection: DeadLetterSelection;
  readonly actor: string;
  /** @default DEFAULT_DEAD_LETTER_JOB_BATCH */
  readonly batchSize?: number;
  /** The graphile-worker task to add. @default DEAD_LETTER_JOB_TASK */
  readonly task?: string;
  /** Writes the caller's audit row in the job's transaction. */
  readonly audit?: AuditHook;
}

/**
 * Records a DLT reprocessing job over the selected pending dead letters and adds its first
 * batch to graphile-worker, in one transaction. Explicit ids must all name pending letters
 * no other unfinished job holds, or nothing is created. A selection matching nothing makes
 * a job that is completed at once.
 */
export async function startDeadLetterJob(
  db: Kysely<Database>,
  options: StartDeadLetterJobOptions,
): Promise<DeadLetterJobRow> {
  const batchSize = options.batchSize ?? DEFAULT_DEAD_LETTER_JOB_BATCH;
  const { ids } = options.selection;
  if (ids !== undefined) {
    const malformed = ids.filter((id) => !isUuid(id));
    if (malformed.length > 0) {
      throw new DeadLetterNotReprocessableError(`not dead-letter ids (UUIDs expected): ${malformed.join(', ')}`);
    }
  }
  const id = newId();
  await auditedTransaction(db, options.audit, async (trx) => {
    await lockDeadLetterJobCreation(trx);
    if (ids !== undefined) {
      const problems = await deadLetterIdProblems(trx, ids);
      if (problems.length > 0) throw new DeadLetterNotReprocessableError(problems.join('; '));
    }
    const total = await insertDeadLetterJob(trx, {
      id,
      selection: options.selection,
      batchSize,
      createdBy: options.actor,
    });
    if (total > 0) await enqueueDeadLetterJobBatch(trx, options.task ?? DEAD_LETTER_JOB_TASK, id);
  });
  const job = await selectDeadLetterJob(db, id);
  if (job === undefined) throw new DeadLetterJobNotFoundError(`dead-letter job ${id} vanished after it was created`);
  return job;
}

/** What one batch run did. */
export interface DeadLetterBatchOutcome {
  /** Items handled by this run (done or failed). */
  readonly handled: number;
  /** No item is pending any more: the job is completed. */
  readonly completed: boolean;
}

/**
 * Reprocesses the next batch of a job's pending dead letters, one transaction per letter
 * (as the reprocessDeadLetters mutation does), recording each outcome as it goes. Letters
 * that cannot be reprocessed (no JSON value, resolved by someone else) are recorded as
 * failed; a transient error (PostgreSQL unreachable) is thrown so graphile-worker retries
 * the batch, which then starts at the first letter still pending.
 */
export async function runDeadLetterJobBatch(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  jobId: string,
): Promise<DeadLetterBatchOutcome> {
  const job = await selectDeadLetterJob(db, jobId);
  if (job === undefined) throw new DeadLetterJobNotFoundError(`no dead-letter job ${jobId}`);
  if (job.state === 'completed') return { handled: 0, completed: true };
  await markDeadLetterJobRunning(db, jobId);
  const actor = deadLetterJobActor(job);
  const items = await selectPendingDeadLetterJobItems(db, jobId, job.batch_size);
  let handled = 0;
  for (const item of items) {
    if (item.letter_status === 'reprocessed' && item.resolved_by === actor) {
      // Published by an earlier run that stopped before recording it: record it only.
      await finishDeadLetterJobItem(db, jobId, item.dead_letter_id, { status: 'done' });
    } else {
      try {
        await reprocessDeadLetters(db, env, { ids: [item.dead_letter_id] }, actor);
        await finishDeadLetterJobItem(db, jobId, item.dead_letter_id, { status: 'done' });
      } catch (error) {
        if (!(error instanceof DeadLetterNotReprocessableError)) {
          await recordDeadLetterJobError(db, jobId, error instanceof Error ? error.message : String(error)).catch(
            () => undefined,
          );
          throw error;
        }
        // Another run of this job (a resumed one beside a slow one) published it meanwhile.
        const now = await selectDeadLetterResolution(db, item.dead_letter_id);
        const ours = now?.status === 'reprocessed' && now.resolved_by === actor;
        await finishDeadLetterJobItem(
          db,
          jobId,
          item.dead_letter_id,
          ours
            ? { status: 'done' }
            : {
                status: 'failed',
                code: error.code,
                message: error.message,
              },
        );
      }
    }
    handled++;
  }
  return { handled, completed: await completeDeadLetterJobIfDone(db, jobId) };
}

const jobPayloadSchema = z.strictObject({ jobId: z.uuid() });

/**
 * The graphile-worker task: one batch, then the next batch as a new job, so no run holds
 * a job lock for long and every run is bounded.
 */
export function deadLetterJobTask(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  task: string = DEAD_LETTER_JOB_TASK,
): Task {
  return async (payload, helpers) => {
    const parsed = jobPayloadSchema.safeParse(payload);
    if (!parsed.success) throw new Error(`invalid ${task} payload: ${parsed.error.message}`);
    const { jobId } = parsed.data;
    let outcome: DeadLetterBatchOutcome;
    try {
      outcome = await runDeadLetterJobBatch(db, env, jobId);
    } catch (error) {
      if (error instanceof DeadLetterJobNotFoundError) {
        helpers.logger.warn(`${task} names unknown dead-letter job ${jobId}; ignored`);
        return;
      }
      throw error;
    }
    if (!outcome.completed) {
      await touchDeadLetterJob(db, jobId);
      await enqueueDeadLetterJobBatch(db, task, jobId);
    }
  };
}

/**
 * Starts again every unfinished job that has not progressed for `staleMs` (its worker
 * crashed holding the graphile-worker job lock, which graphile only frees after hours).
 * Safe beside a live run: letters are published once whatever runs them.
 */
export async function resumeStaleDeadLetterJobs(
  db: Kysely<Database>,
  task: string = DEAD_LETTER_JOB_TASK,
  staleMs: number = STALE_DEAD_LETTER_JOB_MS,
): Promise<string[]> {
  const ids = await selectStaleDeadLetterJobIds(db, staleMs);
  for (const id of ids) {
    await touchDeadLetterJob(db, id);
    await enqueueDeadLetterJobBatch(db, task, id);
  }
  return ids;
}
