// Every statement against sous.dead_letter_job and sous.dead_letter_job_item (migration
// 0007): DLT reprocessing jobs and the dead letters each took on.
import { sql, type Kysely, type Transaction } from 'kysely';
import type { DeadLetterSelection } from '../control-plane/dead-letters.js';
import type { Database } from '../db/schema.js';

export type DeadLetterJobState = 'queued' | 'running' | 'completed';

/** A DLT reprocessing job as stored in sous.dead_letter_job. */
export interface DeadLetterJobRow {
  readonly id: string;
  readonly state: DeadLetterJobState;
  readonly selection: unknown;
  readonly total: number;
  readonly done: number;
  readonly failed: number;
  readonly batch_size: number;
  readonly created_by: string;
  readonly created_at: Date;
  readonly started_at: Date | null;
  readonly updated_at: Date;
  readonly finished_at: Date | null;
  readonly last_error: string | null;
}

/** One dead letter of a job, as it stands now. */
export interface DeadLetterJobItem {
  readonly dead_letter_id: string;
  /** The dead letter's own status: 'reprocessed' once published again (by anyone). */
  readonly letter_status: 'pending' | 'reprocessed' | 'discarded';
  readonly resolved_by: string | null;
}

export interface DeadLetterJobFailureRow {
  readonly dead_letter_id: string;
  readonly error_code: string | null;
  readonly error_message: string | null;
  readonly finished_at: Date | null;
}

/** Serialises job creation, so two jobs created at once never take the same dead letter. */
export async function lockDeadLetterJobCreation(trx: Transaction<Database>): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtextextended('sous.dead_letter_job', 0))`.execute(trx);
}

/**
 * What stands in the way of a job taking on these explicit ids: ids naming no dead letter,
 * letters no longer pending, and letters another unfinished job holds.
 */
export async function deadLetterIdProblems(trx: Transaction<Database>, ids: readonly string[]): Promise<string[]> {
  const { rows } = await sql<{ id: string; status: string; held_by: string | null }>`
    SELECT d.id, d.status,
      (SELECT i.job_id FROM sous.dead_letter_job_item i
        WHERE i.dead_letter_id = d.id AND i.status = 'pending' LIMIT 1) AS held_by
    FROM sous.dead_letter d
    WHERE d.id IN (SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)::uuid)`.execute(trx);
  const found = new Map(rows.map((r) => [r.id, r]));
  return ids.flatMap((id) => {
    const row = found.get(id.toLowerCase());
    if (row === undefined) return [`${id}: no such dead letter`];
    if (row.status !== 'pending') return [`${id}: already ${row.status}`];
    if (row.held_by !== null) return [`${id}: held by dead-letter job ${row.held_by}`];
    return [];
  });
}

/**
 * Creates a job and its items in the caller's transaction: the given ids in their order,
 * or every pending dead letter matching the filter (oldest first) that no unfinished job
 * holds. Returns how many dead letters the job took on.
 */
export async function insertDeadLetterJob(
  trx: Transaction<Database>,
  job: { id: string; selection: DeadLetterSelection; batchSize: number; createdBy: string },
): Promise<number> {
  const s = job.selection;
  await sql`
    INSERT INTO sous.dead_letter_job (id, selection, total, batch_size, created_by)
    VALUES (${job.id}, ${JSON.stringify(s)}::jsonb, 0, ${job.batchSize}, ${job.createdBy})`.execute(trx);
  const inserted =
    s.ids !== undefined
      ? await sql`
          INSERT INTO sous.dead_letter_job_item (job_id, dead_letter_id, ord)
          SELECT ${job.id}, lower(id)::uuid, (ord - 1)::int
          FROM jsonb_array_elements_text(${JSON.stringify(s.ids)}::jsonb) WITH ORDINALITY AS t(id, ord)
          ON CONFLICT DO NOTHING`.execute(trx)
      : await sql`
          INSERT INTO sous.dead_letter_job_item (job_id, dead_letter_id, ord)
          SELECT ${job.id}, d.id, (row_number() OVER (ORDER BY d.ingested_at, d.dlt_offset, d.id) - 1)::int
          FROM sous.dead_letter d
          WHERE d.status = 'pending'
            AND (${s.capability ?? null}::text IS NULL OR d.capability = ${s.capability ?? null})
            AND (${s.errorCode ?? null}::text IS NULL OR d.error_code = ${s.errorCode ?? null})
            AND (${s.originalTopic ?? null}::text IS NULL OR d.original_topic = ${s.originalTopic ?? null})
            AND (${s.executionId ?? null}::uuid IS NULL OR d.execution_id = ${s.executionId ?? null})
            AND NOT EXISTS (SELECT 1 FROM sous.dead_letter_job_item i
                            WHERE i.dead_letter_id = d.id AND i.status = 'pending')`.execute(trx);
  const total = Number(inserted.numAffectedRows ?? 0n);
  await sql`
    UPDATE sous.dead_letter_job
    SET total = ${total},
        state = CASE WHEN ${total}::int = 0 THEN 'completed' ELSE 'queued' END,
        finished_at = CASE WHEN ${total}::int = 0 THEN now() END
    WHERE id = ${job.id}`.execute(trx);
  return total;
}

export async function selectDeadLetterJob(db: Kysely<Database>, id: string): Promise<DeadLetterJobRow | undefined> {
  const { rows } = await sql<DeadLetterJobRow>`SELECT * FROM sous.dead_letter_job WHERE id = ${id}`.execute(db);
  return rows[0];
}

/** The newest jobs first. */
export async function selectDeadLetterJobs(db: Kysely<Database>, first: number): Promise<DeadLetterJobRow[]> {
  const { rows } = await sql<DeadLetterJobRow>`
    SELECT * FROM sous.dead_letter_job ORDER BY created_at DESC, id LIMIT ${first}`.execute(db);
  return rows;
}

/** The dead letters of a job that did not go through, in job order. */
export async function selectDeadLetterJobFailures(
  db: Kysely<Database>,
  jobId: string,
  first: number,
): Promise<DeadLetterJobFailureRow[]> {
  const { rows } = await sql<DeadLetterJobFailureRow>`
    SELECT dead_letter_id, error_code, error_message, finished_at FROM sous.dead_letter_job_item
    WHERE job_id = ${jobId} AND status = 'failed' ORDER BY ord LIMIT ${first}`.execute(db);
  return rows;
}

/** Marks a queued job running (a no-op when it runs already or is completed). */
export async function markDeadLetterJobRunning(db: Kysely<Database>, jobId: string): Promise<void> {
  await sql`
    UPDATE sous.dead_letter_job SET state = 'running', started_at = now(), updated_at = now()
    WHERE id = ${jobId} AND state = 'queued'`.execute(db);
}

/** The next `limit` pending items of a job, with what their dead letters say now. */
export async function selectPendingDeadLetterJobItems(
  db: Kysely<Database>,
  jobId: string,
  limit: number,
): Promise<DeadLetterJobItem[]> {
  const { rows } = await sql<DeadLetterJobItem>`
    SELECT i.dead_letter_id, d.status AS letter_status, d.resolved_by
    FROM sous.dead_letter_job_item i JOIN sous.dead_letter d ON d.id = i.dead_letter_id
    WHERE i.job_id = ${jobId} AND i.status = 'pending'
    ORDER BY i.ord LIMIT ${limit}`.execute(db);
  return rows;
}

/**
 * Records what became of one item and counts it in the job's progress, in one
 * transaction; an item already finished (the batch ran twice) changes nothing.
 */
export async function finishDeadLetterJobItem(
  db: Kysely<Database>,
  jobId: string,
  deadLetterId: string,
  outcome: { status: 'done' } | { status: 'failed'; code: string; message: string },
): Promise<void> {
  const failed = outcome.status === 'failed';
  await sql`
    WITH item AS (
      UPDATE sous.dead_letter_job_item
      SET status = ${outcome.status}, finished_at = now(),
          error_code = ${failed ? outcome.code : null}, error_message = ${failed ? outcome.message : null}
      WHERE job_id = ${jobId} AND dead_letter_id = ${deadLetterId} AND status = 'pending'
      RETURNING 1
    )
    UPDATE sous.dead_letter_job
    SET done = done + (CASE WHEN ${failed} THEN 0 ELSE 1 END),
        failed = failed + (CASE WHEN ${failed} THEN 1 ELSE 0 END),
        updated_at = now(), last_error = NULL
    WHERE id = ${jobId} AND EXISTS (SELECT 1 FROM item)`.execute(db);
}

/** Completes a job none of whose items is pending; returns whether it is completed now. */
export async function completeDeadLetterJobIfDone(db: Kysely<Database>, jobId: string): Promise<boolean> {
  const { rows } = await sql<{ state: string }>`
    UPDATE sous.dead_letter_job SET state = 'completed', finished_at = now(), updated_at = now()
    WHERE id = ${jobId} AND state <> 'completed'
      AND NOT EXISTS (SELECT 1 FROM sous.dead_letter_job_item WHERE job_id = ${jobId} AND status = 'pending')
    RETURNING state`.execute(db);
  if (rows.length > 0) return true;
  return (await selectDeadLetterJob(db, jobId))?.state === 'completed';
}

/** Keeps the transient error a batch stopped on, for operators to see while it is retried. */
export async function recordDeadLetterJobError(db: Kysely<Database>, jobId: string, message: string): Promise<void> {
  await sql`UPDATE sous.dead_letter_job SET last_error = ${message} WHERE id = ${jobId}`.execute(db);
}

/**
 * Adds the graphile-worker job that runs the next batch (in the caller's transaction when
 * given one). One job key per DLT job: adding it again while a batch waits replaces that
 * batch's job instead of queueing a second one.
 */
export async function enqueueDeadLetterJobBatch(
  db: Kysely<Database> | Transaction<Database>,
  task: string,
  jobId: string,
): Promise<void> {
  await sql`
    SELECT graphile_worker.add_job(${task}, json_build_object('jobId', ${jobId}::text),
      job_key => ${`sous-dead-letter-job:${jobId}`}, max_attempts => 25)`.execute(db);
}

/** Unfinished jobs whose progress has not moved for `staleMs`: their worker is gone. */
export async function selectStaleDeadLetterJobIds(db: Kysely<Database>, staleMs: number): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    SELECT id FROM sous.dead_letter_job
    WHERE state <> 'completed' AND updated_at < now() - make_interval(secs => ${staleMs / 1000})`.execute(db);
  return rows.map((r) => r.id);
}

/** Moves a job's progress clock, so it does not look stale while a batch is starting. */
export async function touchDeadLetterJob(db: Kysely<Database>, jobId: string): Promise<void> {
  await sql`UPDATE sous.dead_letter_job SET updated_at = now() WHERE id = ${jobId}`.execute(db);
}

/** A dead letter's status and who resolved it, or undefined when there is no such letter. */
export async function selectDeadLetterResolution(
  db: Kysely<Database>,
  deadLetterId: string,
): Promise<{ status: string; resolved_by: string | null } | undefined> {
  const { rows } = await sql<{ status: string; resolved_by: string | null }>`
    SELECT status, resolved_by FROM sous.dead_letter WHERE id = ${deadLetterId}`.execute(db);
  return rows[0];
}
