import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../db/schema.js';
import type { StepWrite } from './attempts.js';

/** Steps a rerun forgot, per execution: their rows, attempts and items go. */
export interface ForgottenSteps {
  readonly executionId: string;
  readonly stepKeys: readonly string[];
}

/** Flattens forgotten steps into parallel arrays for unnest. */
function pairs(forgotten: readonly ForgottenSteps[]): { ids: string[]; keys: string[] } {
  const ids: string[] = [];
  const keys: string[] = [];
  for (const { executionId, stepKeys } of forgotten) {
    for (const key of stepKeys) {
      ids.push(executionId);
      keys.push(key);
    }
  }
  return { ids, keys };
}

/**
 * Deletes the rows of forgotten steps: superseded attempts, steps (with their current
 * attempts) and forEach items, one statement per table (the event log keeps their history).
 */
export async function deleteForgottenSteps(trx: Kysely<Database>, forgotten: readonly ForgottenSteps[]): Promise<void> {
  const { ids, keys } = pairs(forgotten);
  if (ids.length === 0) return;
  await sql`
    DELETE FROM sous.superseded_attempt WHERE (execution_id, step_key) IN (SELECT * FROM unnest(${ids}::uuid[], ${keys}::text[]))`.execute(
    trx,
  );
  await sql`
    DELETE FROM sous.step WHERE (execution_id, step_key) IN (SELECT * FROM unnest(${ids}::uuid[], ${keys}::text[]))`.execute(
    trx,
  );
  await sql`
    DELETE FROM sous.foreach_item WHERE (execution_id, step_key) IN (SELECT * FROM unnest(${ids}::uuid[], ${keys}::text[]))`.execute(
    trx,
  );
}

/**
 * Step writes as a row source (alias r) for the statements below. json_to_recordset, not
 * jsonb_: the output (a json column since 0024) is stored as the text written here.
 */
function stepWriteRecordset(rows: readonly StepWrite[]): RawBuilder<unknown> {
  return sql`json_to_recordset(${JSON.stringify(rows)}::json) AS r(execution_id uuid, step_key text, step_id text,
    item_index int, compensation boolean, kind text, status text, attempts int, output json, error jsonb,
    child_execution_id uuid, created_at timestamptz, updated_at timestamptz, finished_at timestamptz,
    new_attempt boolean, attempt_id uuid, capability text, region text, attempt_status text, worker_id text,
    attempt_error jsonb, scheduled_at timestamptz, started_at timestamptz, attempt_finished_at timestamptz,
    last_heartbeat_at timestamptz)`;
}

/**
 * Inserts or updates step rows of any number of executions (one row per key): an UPDATE
 * of the rows that exist, then an INSERT of the others. Not INSERT ... ON CONFLICT: that
 * locks each existing row before updating it and confirms each new one, two more WAL
 * records per step (about 100 bytes). The caller holds the executions' locks, so no
 * other transaction writes these steps between the two statements.
 *
 * A row's current attempt (0022) changes with it: a new attempt replaces every attempt
 * column; a change to the stored one sets the columns it names, and only while the row's
 * attempt is the one it names. The attempt it replaces was copied to superseded_attempt
 * first (supersedeStoredAttempts).
 */
export async function upsertSteps(trx: Kysely<Database>, rows: readonly StepWrite[]): Promise<void> {
  if (rows.length === 0) return;
  // The current attempt's columns: replaced by a new attempt, changed where the change
  // names the row's attempt and sets them, else kept.
  const changed = (column: string) =>
    sql.raw(`CASE WHEN r.new_attempt THEN r.${column} WHEN r.attempt_id = s.attempt_id
      THEN coalesce(r.${column}, s.${column}) ELSE s.${column} END`);
  const replaced = (column: string) => sql.raw(`CASE WHEN r.new_attempt THEN r.${column} ELSE s.${column} END`);
  const { rows: updated } = await sql<{ execution_id: string; step_key: string }>`/* sous:updateSteps */
    UPDATE sous.step s SET status = r.status, attempts = r.attempts, output = r.output, error = r.error,
      child_execution_id = r.child_execution_id, updated_at = r.updated_at, finished_at = r.finished_at,
      attempt_id = ${replaced('attempt_id')}, capability = ${replaced('capability')}, region = ${replaced('region')},
      scheduled_at = ${replaced('scheduled_at')}, attempt_status = ${changed('attempt_status')},
      worker_id = ${changed('worker_id')}, attempt_error = ${changed('attempt_error')},
      started_at = ${changed('started_at')}, attempt_finished_at = ${changed('attempt_finished_at')},
      last_heartbeat_at = ${changed('last_heartbeat_at')}
    FROM ${stepWriteRecordset(rows)}
    WHERE s.execution_id = r.execution_id AND s.step_key = r.step_key
    RETURNING s.execution_id, s.step_key`.execute(trx);
  const existing = new Set(updated.map((r) => `${r.execution_id}\u0000${r.step_key}`));
  const fresh = rows.filter((r) => !existing.has(`${r.execution_id.toLowerCase()}\u0000${r.step_key}`));
  if (fresh.length === 0) return;
  await sql`/* sous:insertSteps */
    INSERT INTO sous.step (execution_id, step_key, step_id, item_index, compensation, kind, status, attempts, output, error,
      child_execution_id, created_at, updated_at, finished_at, attempt_id, capability, region, attempt_status,
      worker_id, attempt_error, scheduled_at, started_at, attempt_finished_at, last_heartbeat_at)
    SELECT execution_id, step_key, step_id, item_index, compensation, kind, status, attempts, output, error,
      child_execution_id, created_at, updated_at, finished_at, attempt_id, capability, region, attempt_status,
      worker_id, attempt_error, scheduled_at, started_at, attempt_finished_at, last_heartbeat_at
    FROM ${stepWriteRecordset(fresh)}`.execute(trx);
}

/**
 * Item steps of these body steps that finished (completed or skipped), by step key, with
 * their outputs: what a forEach's output needs once items have left the execution state.
 */
export async function selectFinishedItemSteps(
  trx: Kysely<Database>,
  executionId: string,
  stepIds: readonly string[],
): Promise<Map<string, unknown>> {
  const { rows } = await sql<{ step_key: string; output: unknown }>`/* sous:selectFinishedItemSteps */
    SELECT step_key, output FROM sous.step
    WHERE execution_id = ${executionId} AND step_id = ANY(${[...stepIds]}::text[]) AND item_index IS NOT NULL
      AND NOT compensation AND status IN ('completed', 'skipped')`.execute(trx);
  return new Map(rows.map((r) => [r.step_key, r.output]));
}

/** An execution's step rows as the control plane's view shows them, in the order they were created. */
export async function selectStepsOf(db: Kysely<Database>, executionId: string) {
  return db
    .selectFrom('sous.step')
    .select([
      'step_key',
      'step_id',
      'item_index',
      'compensation',
      'kind',
      'status',
      'attempts',
      'output',
      'error',
      'created_at',
      'finished_at',
    ])
    .where('execution_id', '=', executionId)
    .orderBy('created_at')
    .orderBy('step_key')
    .execute();
}
