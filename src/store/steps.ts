import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { StepRow } from '../engine/projection.js';

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
 * Deletes the rows of forgotten steps: attempts, steps and forEach items, one statement
 * per table (the event log keeps their history).
 */
export async function deleteForgottenSteps(trx: Kysely<Database>, forgotten: readonly ForgottenSteps[]): Promise<void> {
  const { ids, keys } = pairs(forgotten);
  if (ids.length === 0) return;
  await sql`
    DELETE FROM sous.step_attempt WHERE (execution_id, step_key) IN (SELECT * FROM unnest(${ids}::uuid[], ${keys}::text[]))`.execute(
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
 * Inserts or updates step rows of any number of executions (one row per key): an UPDATE
 * of the rows that exist, then an INSERT of the others. Not INSERT ... ON CONFLICT: that
 * locks each existing row before updating it and confirms each new one, two more WAL
 * records per step (about 100 bytes). The caller holds the executions' locks, so no
 * other transaction writes these steps between the two statements.
 */
export async function upsertSteps(trx: Kysely<Database>, rows: readonly StepRow[]): Promise<void> {
  if (rows.length === 0) return;
  const { rows: updated } = await sql<{ execution_id: string; step_key: string }>`/* sous:updateSteps */
    UPDATE sous.step s SET status = r.status, attempts = r.attempts, output = r.output, error = r.error,
      child_execution_id = r.child_execution_id, updated_at = r.updated_at, finished_at = r.finished_at
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(execution_id uuid, step_key text, status text,
      attempts int, output jsonb, error jsonb, child_execution_id uuid, updated_at timestamptz, finished_at timestamptz)
    WHERE s.execution_id = r.execution_id AND s.step_key = r.step_key
    RETURNING s.execution_id, s.step_key`.execute(trx);
  const existing = new Set(updated.map((r) => `${r.execution_id}\u0000${r.step_key}`));
  const fresh = rows.filter((r) => !existing.has(`${r.execution_id.toLowerCase()}\u0000${r.step_key}`));
  if (fresh.length === 0) return;
  await sql`/* sous:insertSteps */
    INSERT INTO sous.step (execution_id, step_key, step_id, item_index, compensation, kind, status, attempts, output, error,
      child_execution_id, created_at, updated_at, finished_at)
    SELECT execution_id, step_key, step_id, item_index, compensation, kind, status, attempts, output, error,
      child_execution_id, created_at, updated_at, finished_at
    FROM jsonb_to_recordset(${JSON.stringify(fresh)}::jsonb) AS r(execution_id uuid, step_key text, step_id text,
      item_index int, compensation boolean, kind text, status text, attempts int, output jsonb, error jsonb,
      child_execution_id uuid, created_at timestamptz, updated_at timestamptz, finished_at timestamptz)`.execute(trx);
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
