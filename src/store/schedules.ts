// Every statement against sous.schedule and sous.schedule_run (migration 0015).
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';

/** A schedule as stored. */
export interface ScheduleRow {
  readonly id: string;
  readonly name: string;
  readonly recipe_name: string;
  readonly recipe_version: number | null;
  readonly cron: string;
  readonly time_zone: string;
  readonly input: unknown;
  readonly overlap: string;
  readonly missed_runs: string;
  readonly next_fire_at: Date;
  readonly queued_fire_at: Date | null;
  readonly last_execution_id: string | null;
  readonly paused_at: Date | null;
  readonly created_by: string;
  readonly created_at: Date;
  readonly updated_at: Date;
}

export interface ScheduleRunRow {
  readonly schedule_id: string;
  readonly fire_time: Date;
  readonly outcome: 'started' | 'skipped' | 'queued' | 'missed' | 'failed';
  readonly catch_up: boolean;
  readonly execution_id: string | null;
  readonly error: unknown;
  readonly decided_at: Date;
}

export interface NewSchedule {
  readonly id: string;
  readonly name: string;
  readonly recipeName: string;
  readonly recipeVersion: number | undefined;
  readonly cron: string;
  readonly timeZone: string;
  readonly input: unknown;
  readonly overlap: string;
  readonly missedRuns: string;
  readonly nextFireAt: Date;
  readonly createdBy: string;
}

/** Inserts a schedule unless one has its name: the row with that name, and whether it is new. */
export async function insertSchedule(
  db: Kysely<Database>,
  s: NewSchedule,
): Promise<{ row: ScheduleRow; created: boolean }> {
  const inserted = await sql<ScheduleRow>`
    INSERT INTO sous.schedule (id, name, recipe_name, recipe_version, cron, time_zone, input, overlap, missed_runs,
      next_fire_at, created_by)
    VALUES (${s.id}, ${s.name}, ${s.recipeName}, ${s.recipeVersion ?? null}, ${s.cron}, ${s.timeZone},
      ${JSON.stringify(s.input ?? null)}::jsonb, ${s.overlap}, ${s.missedRuns}, ${s.nextFireAt}, ${s.createdBy})
    ON CONFLICT (name) DO NOTHING
    RETURNING *`.execute(db);
  const row = inserted.rows[0];
  if (row !== undefined) return { row, created: true };
  const existing = await selectScheduleByName(db, s.name);
  if (existing === undefined) throw new Error(`schedule ${s.name} neither inserted nor found`);
  return { row: existing, created: false };
}

export async function selectScheduleByName(db: Kysely<Database>, name: string): Promise<ScheduleRow | undefined> {
  const { rows } = await sql<ScheduleRow>`SELECT * FROM sous.schedule WHERE name = ${name}`.execute(db);
  return rows[0];
}

export async function selectSchedule(db: Kysely<Database>, id: string): Promise<ScheduleRow | undefined> {
  const { rows } = await sql<ScheduleRow>`SELECT * FROM sous.schedule WHERE id = ${id}`.execute(db);
  return rows[0];
}

export async function selectSchedules(db: Kysely<Database>, first: number): Promise<ScheduleRow[]> {
  const { rows } = await sql<ScheduleRow>`SELECT * FROM sous.schedule ORDER BY name LIMIT ${first}`.execute(db);
  return rows;
}

/** Pauses a schedule (a paused one stays as it is); undefined when there is none. */
export async function pauseScheduleRow(db: Kysely<Database>, id: string, at: Date): Promise<ScheduleRow | undefined> {
  const { rows } = await sql<ScheduleRow>`
    UPDATE sous.schedule SET paused_at = coalesce(paused_at, ${at}), updated_at = ${at}
    WHERE id = ${id} RETURNING *`.execute(db);
  return rows[0];
}

/**
 * Resumes a paused schedule from `nextFireAt` (fires while paused are not runs; an active
 * schedule keeps its cursor, so a resume sent twice changes nothing).
 */
export async function resumeScheduleRow(
  db: Kysely<Database>,
  id: string,
  at: Date,
  nextFireAt: Date,
): Promise<ScheduleRow | undefined> {
  const { rows } = await sql<ScheduleRow>`
    UPDATE sous.schedule
    SET next_fire_at = CASE WHEN paused_at IS NULL THEN next_fire_at ELSE ${nextFireAt} END,
      paused_at = NULL, updated_at = ${at}
    WHERE id = ${id} RETURNING *`.execute(db);
  return rows[0];
}

/** Deletes a schedule and its run history; false when there was none. */
export async function deleteScheduleRow(db: Kysely<Database>, id: string): Promise<boolean> {
  const { rows } = await sql<{ id: string }>`DELETE FROM sous.schedule WHERE id = ${id} RETURNING id`.execute(db);
  return rows.length > 0;
}

/** Ids of active schedules with work at `now` (a fire due or a fire queued), most overdue first. */
export async function selectDueScheduleIds(
  db: Kysely<Database>,
  now: Date,
  limit: number,
  only: readonly string[] | undefined,
): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    SELECT id FROM sous.schedule
    WHERE paused_at IS NULL AND (next_fire_at <= ${now} OR queued_fire_at IS NOT NULL)
      ${only === undefined ? sql`` : sql`AND id = ANY(${[...only]}::uuid[])`}
    ORDER BY next_fire_at
    LIMIT ${limit}`.execute(db);
  return rows.map((r) => r.id);
}

/**
 * Locks one schedule if it still has work at `now`; undefined when it has none or another
 * evaluator holds it (SKIP LOCKED: two control planes take different schedules).
 */
export async function lockDueSchedule(
  trx: Transaction<Database>,
  id: string,
  now: Date,
): Promise<ScheduleRow | undefined> {
  const { rows } = await sql<ScheduleRow>`
    SELECT * FROM sous.schedule
    WHERE id = ${id} AND paused_at IS NULL AND (next_fire_at <= ${now} OR queued_fire_at IS NOT NULL)
    FOR UPDATE SKIP LOCKED`.execute(trx);
  return rows[0];
}

/** Locks one schedule, waiting for an evaluator that holds it. */
export async function lockSchedule(trx: Transaction<Database>, id: string): Promise<ScheduleRow | undefined> {
  const { rows } = await sql<ScheduleRow>`SELECT * FROM sous.schedule WHERE id = ${id} FOR UPDATE`.execute(trx);
  return rows[0];
}

/** The status of an execution (undefined once retention purged it). */
export async function executionStatus(trx: Transaction<Database>, id: string): Promise<string | undefined> {
  const { rows } = await sql<{ status: string }>`SELECT status FROM sous.execution WHERE id = ${id}`.execute(trx);
  return rows[0]?.status;
}

export interface RunRecord {
  readonly fireTime: Date;
  readonly outcome: ScheduleRunRow['outcome'];
  readonly catchUp: boolean;
  readonly executionId?: string;
  readonly error?: unknown;
}

/**
 * Records one fire; false when it was recorded before (the unique key (schedule_id,
 * fire_time)), in which case the caller starts nothing. A queued fire becomes started
 * through `startQueuedRun` instead.
 */
export async function insertRun(trx: Transaction<Database>, scheduleId: string, run: RunRecord): Promise<boolean> {
  const { rows } = await sql<{ fire_time: Date }>`
    INSERT INTO sous.schedule_run (schedule_id, fire_time, outcome, catch_up, execution_id, error)
    VALUES (${scheduleId}, ${run.fireTime}, ${run.outcome}, ${run.catchUp}, ${run.executionId ?? null},
      ${run.error === undefined ? null : JSON.stringify(run.error)}::jsonb)
    ON CONFLICT DO NOTHING RETURNING fire_time`.execute(trx);
  return rows.length > 0;
}

/** Settles a fire recorded before (started with its execution, or failed with why). */
export async function settleRun(trx: Transaction<Database>, scheduleId: string, run: RunRecord): Promise<void> {
  await sql`
    UPDATE sous.schedule_run
    SET outcome = ${run.outcome}, execution_id = ${run.executionId ?? null},
      error = ${run.error === undefined ? null : JSON.stringify(run.error)}::jsonb
    WHERE schedule_id = ${scheduleId} AND fire_time = ${run.fireTime}`.execute(trx);
}

/** Moves the schedule's cursor and remembers its queued fire and last execution. */
export async function updateScheduleAfterEvaluation(
  trx: Transaction<Database>,
  id: string,
  next: { nextFireAt: Date; queuedFireAt: Date | null; lastExecutionId: string | null },
): Promise<void> {
  await sql`
    UPDATE sous.schedule
    SET next_fire_at = ${next.nextFireAt}, queued_fire_at = ${next.queuedFireAt},
      last_execution_id = ${next.lastExecutionId}
    WHERE id = ${id}`.execute(trx);
}

/** Forgets runs decided before `before` (history only: the cursor guards fires already decided). */
export async function pruneRuns(trx: Transaction<Database>, scheduleId: string, before: Date): Promise<void> {
  await sql`
    DELETE FROM sous.schedule_run
    WHERE schedule_id = ${scheduleId} AND fire_time < ${before} AND outcome <> 'queued'`.execute(trx);
}

/** The latest `first` runs of each schedule, newest first. */
export async function selectRuns(
  db: Kysely<Database>,
  scheduleIds: readonly string[],
  first: number,
): Promise<ScheduleRunRow[]> {
  if (scheduleIds.length === 0) return [];
  const { rows } = await sql<ScheduleRunRow>`
    SELECT r.* FROM unnest(${[...scheduleIds]}::uuid[]) AS s(id)
    CROSS JOIN LATERAL (
      SELECT * FROM sous.schedule_run WHERE schedule_id = s.id ORDER BY fire_time DESC LIMIT ${first}
    ) r`.execute(db);
  return rows;
}
