import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { ExecutionRow } from '../engine/projection.js';
import type { EngineEvent } from '../engine/events.js';
import type { ExecutionState, ExecutionStatus } from '../engine/state.js';

/** What a decision needs of an execution it has locked, before its state is known. */
export interface LockedHead {
  readonly id: string;
  readonly status: ExecutionStatus;
  readonly recipe_name: string;
  readonly recipe_version: number;
  readonly last_seq: number;
  /** The seq the stored state snapshot is at (last_seq for rows written before 0010). */
  readonly state_seq: number;
  /** The decision batch that last wrote the row: a cached state is good when it names it. */
  readonly written_by: string | null;
  readonly traceparent: string | null;
  readonly reply_topic: string;
}

/** A locked execution with its state after event last_seq (cached, or snapshot and log). */
export interface LockedExecution extends LockedHead {
  readonly state: ExecutionState;
}

/** An execution row as a decision inserts it: the projection plus what is fixed at start. */
export interface ExecutionWrite extends ExecutionRow {
  readonly traceparent: string | null;
  readonly reply_topic: string;
  readonly written_by: string;
}

/** An execution row as a decision updates it: the state is written only when a snapshot is due. */
export interface ExecutionChange extends ExecutionRow {
  readonly written_by: string;
  readonly snapshot: boolean;
}

/**
 * Locks executions for a decision, in id order in one statement: two transactions
 * locking overlapping sets take the locks in the same order, so they queue instead of
 * deadlocking, and one execution is decided by one transaction at a time whichever
 * process runs it. Executions that do not exist are absent from the map. The state is
 * not read here: the caller has it cached, or reads the snapshot and the events after it.
 */
export async function lockExecutionHeads(
  trx: Kysely<Database>,
  executionIds: readonly string[],
): Promise<Map<string, LockedHead>> {
  if (executionIds.length === 0) return new Map();
  const { rows } = await sql<LockedHead>`/* sous:lockExecutionHeads */
    SELECT id, status, recipe_name, recipe_version, last_seq, coalesce(state_seq, last_seq) AS state_seq, written_by,
      traceparent, reply_topic
    FROM sous.execution WHERE id = ANY(${[...executionIds]}::uuid[]) ORDER BY id FOR UPDATE`.execute(trx);
  return new Map(rows.map((r) => [r.id, r]));
}

/** A stored state snapshot and the events appended after it, oldest first. */
export interface StateSnapshot {
  readonly id: string;
  readonly recipe_name: string;
  readonly recipe_version: number;
  readonly state: ExecutionState;
  readonly state_seq: number;
  readonly last_seq: number;
  readonly written_by: string | null;
  readonly events: readonly EngineEvent[];
}

/**
 * Executions' state snapshots with the events after them, in one statement: what
 * replaying gives an execution's state at last_seq. Under the row lock in a decision;
 * without it (the API) the answer is one consistent moment of each execution, since the
 * snapshot, last_seq and the events are read in one statement.
 */
export async function selectStateSnapshots(
  db: Kysely<Database>,
  executionIds: readonly string[],
): Promise<Map<string, StateSnapshot>> {
  if (executionIds.length === 0) return new Map();
  const { rows } = await sql<StateSnapshot>`/* sous:selectStateSnapshots */
    SELECT e.id, e.recipe_name, e.recipe_version, e.state, coalesce(e.state_seq, e.last_seq) AS state_seq, e.last_seq,
      e.written_by,
      coalesce((SELECT jsonb_agg(v.data ORDER BY v.seq) FROM sous.execution_event v
        WHERE v.execution_id = e.id AND v.seq > coalesce(e.state_seq, e.last_seq) AND v.seq <= e.last_seq), '[]') AS events
    FROM sous.execution e WHERE e.id = ANY(${[...executionIds]}::uuid[])`.execute(db);
  return new Map(rows.map((r) => [r.id, r]));
}

/** JSON text of a value for a jsonb column; absent values are JSON null, as they always were. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value ?? null);
}

/** New executions (a start, sub-recipes a decision started), in one statement. */
export async function insertExecutions(trx: Kysely<Database>, rows: readonly ExecutionWrite[]): Promise<void> {
  if (rows.length === 0) return;
  // jsonb_to_recordset reads a JSON null as SQL NULL: output and error stay JSON null, as
  // single-row writes always stored them.
  await sql`/* sous:insertExecutions */
    INSERT INTO sous.execution
      (id, recipe_name, recipe_version, status, input, output, error, idempotency_key, parent_execution_id,
       parent_step_key, traceparent, reply_topic, state, last_seq, state_seq, written_by, created_at, updated_at,
       finished_at)
    SELECT id, recipe_name, recipe_version, status, coalesce(input, 'null'), coalesce(output, 'null'),
      coalesce(error, 'null'), idempotency_key, parent_execution_id, parent_step_key, traceparent, reply_topic, state,
      last_seq, last_seq, written_by, created_at, updated_at, finished_at
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(id uuid, recipe_name text, recipe_version int,
      status text, input jsonb, output jsonb, error jsonb, idempotency_key text, parent_execution_id uuid,
      parent_step_key text, traceparent text, reply_topic text, state jsonb, last_seq int, written_by uuid,
      created_at timestamptz, updated_at timestamptz, finished_at timestamptz)`.execute(trx);
}

/**
 * The columns a decision changes on executions it locked, in one statement. The state
 * and state_seq change only where a snapshot is due; elsewhere the row keeps its
 * snapshot (a row written before 0010 gets state_seq = its last_seq before this write,
 * which is where its state is).
 */
export async function updateExecutions(trx: Kysely<Database>, rows: readonly ExecutionChange[]): Promise<void> {
  if (rows.length === 0) return;
  const changes = rows.map((r) => ({
    id: r.id,
    status: r.status,
    output: r.output,
    error: r.error,
    state: r.snapshot ? r.state : null,
    last_seq: r.last_seq,
    written_by: r.written_by,
    updated_at: r.updated_at,
    finished_at: r.finished_at,
  }));
  await sql`/* sous:updateExecutions */
    UPDATE sous.execution e SET status = u.status, output = coalesce(u.output, 'null'), error = coalesce(u.error, 'null'),
      state = coalesce(u.state, e.state),
      state_seq = CASE WHEN u.state IS NULL THEN coalesce(e.state_seq, e.last_seq) ELSE u.last_seq END,
      last_seq = u.last_seq, written_by = u.written_by, updated_at = u.updated_at, finished_at = u.finished_at
    FROM jsonb_to_recordset(${JSON.stringify(changes)}::jsonb) AS u(id uuid, status text, output jsonb, error jsonb,
      state jsonb, last_seq int, written_by uuid, updated_at timestamptz, finished_at timestamptz)
    WHERE e.id = u.id`.execute(trx);
}

/**
 * Serialises starts with one idempotency key (two at once: the second waits here, then
 * finds the first) and returns the execution the key already names, if any.
 */
export async function lockIdempotencyKey(
  trx: Kysely<Database>,
  idempotencyKey: string,
): Promise<{ id: string; status: ExecutionStatus } | undefined> {
  await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`sous.start:${idempotencyKey}`}, 0))`.execute(trx);
  const { rows } = await sql<{ id: string; status: ExecutionStatus }>`
    SELECT id, status FROM sous.execution WHERE idempotency_key = ${idempotencyKey}`.execute(trx);
  return rows[0];
}

/** An execution's row as the API and tests read it. */
export interface ExecutionRecord {
  readonly id: string;
  readonly recipe_name: string;
  readonly recipe_version: number;
  readonly status: ExecutionStatus;
  readonly input: unknown;
  readonly output: unknown;
  readonly error: unknown;
  readonly idempotency_key: string | null;
  readonly parent_execution_id: string | null;
  readonly created_at: Date;
  readonly updated_at: Date;
  readonly finished_at: Date | null;
}

const EXECUTION_COLUMNS = [
  'id',
  'recipe_name',
  'recipe_version',
  'status',
  'input',
  'output',
  'error',
  'idempotency_key',
  'parent_execution_id',
  'created_at',
  'updated_at',
  'finished_at',
] as const;

/** Executions by id (the API's loaders, the test helpers), in no particular order. */
export async function selectExecutions(db: Kysely<Database>, ids: readonly string[]): Promise<ExecutionRecord[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .selectFrom('sous.execution')
    .select(EXECUTION_COLUMNS)
    .where('id', '=', sql<string>`ANY(${[...ids]}::uuid[])`)
    .execute();
  return rows as ExecutionRecord[];
}
