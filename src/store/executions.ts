import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../db/schema.js';
import type { ExecutionRow } from '../engine/projection.js';
import type { EngineEvent } from '../engine/events.js';
import { eventJson } from './events.js';
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

/** An execution row as a decision updates it; `snapshot`: a snapshot of its state is written with it. */
export interface ExecutionChange extends ExecutionRow {
  readonly written_by: string;
  readonly snapshot: boolean;
}

/**
 * Locks executions for a decision and reads their heads, in one round trip
 * (sous.lock_execution_heads, 0021). The lock is the execution's advisory lock
 * (sous.execution_lock_key), not a row lock: a row lock writes a WAL record and dirties
 * the row's page on every decision, an advisory lock writes nothing. The keys are taken in
 * key order: two transactions locking overlapping sets queue instead of deadlocking, and
 * one execution is decided by one transaction at a time whichever process runs it. The
 * heads are read after the locks are held, by a statement of their own (so with a fresh
 * snapshot): they show what the lock's previous holder committed. Executions that do not
 * exist are absent from the map. The state is not read here: the caller has it cached, or
 * reads the snapshot and the events after it.
 */
export async function lockExecutionHeads(
  trx: Kysely<Database>,
  executionIds: readonly string[],
): Promise<Map<string, LockedHead>> {
  if (executionIds.length === 0) return new Map();
  const { rows } = await sql<LockedHead>`/* sous:lockExecutionHeads */
    SELECT * FROM sous.lock_execution_heads(${[...executionIds]}::uuid[])`.execute(trx);
  return new Map(rows.map((r) => [r.id, r]));
}

/** A stored state snapshot and the events appended after it, oldest first. */
export interface StateSnapshot {
  readonly id: string;
  readonly recipe_name: string;
  readonly recipe_version: number;
  /** Null when there is no snapshot yet (state_seq 0). */
  readonly state: ExecutionState | null;
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
    SELECT e.id, e.recipe_name, e.recipe_version, b.state, b.state_seq, e.last_seq, e.written_by,
      coalesce((SELECT jsonb_agg(${eventJson('v')} ORDER BY v.seq)
        FROM sous.execution_events(e.id, b.state_seq, e.last_seq) v), '[]') AS events
    ${snapshotSource(executionIds)}`.execute(db);
  return new Map(rows.map((r) => [r.id, r]));
}

/** An execution's stored snapshot alone, without the events after it (verifyExecution reads the whole log anyway). */
export async function selectStateSnapshotOnly(
  db: Kysely<Database>,
  executionId: string,
): Promise<Pick<StateSnapshot, 'state' | 'state_seq'> | undefined> {
  const { rows } = await sql<Pick<StateSnapshot, 'state' | 'state_seq'>>`/* sous:selectStateSnapshotOnly */
    SELECT b.state, b.state_seq ${snapshotSource([executionId])}`.execute(db);
  return rows[0];
}

/**
 * FROM the executions and their snapshots (alias e, and b for state and state_seq). The
 * snapshot is the sous.execution_snapshot row (0017) when there is one; else the state a
 * row written before 0017 carries (at state_seq, or at last_seq before 0010); else none
 * (seq 0: the whole log is replayed).
 */
function snapshotSource(executionIds: readonly string[]): RawBuilder<unknown> {
  return sql`FROM sous.execution e
    LEFT JOIN sous.execution_snapshot s ON s.execution_id = e.id
    CROSS JOIN LATERAL (SELECT
      CASE WHEN s.execution_id IS NOT NULL THEN s.state ELSE e.state END AS state,
      CASE WHEN s.execution_id IS NOT NULL THEN s.seq WHEN e.state IS NULL THEN 0
        ELSE coalesce(e.state_seq, e.last_seq) END AS state_seq) AS b
    WHERE e.id = ANY(${[...executionIds]}::uuid[])`;
}

/** JSON text of a value for a jsonb column; absent values are JSON null, as they always were. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value ?? null);
}

/** A row's columns without its state, which is never stored on the row (snapshots have their own table). */
function withoutState<T extends { readonly state: unknown }>(row: T): Omit<T, 'state'> {
  const { state: _state, ...rest } = row;
  return rest;
}

/**
 * New executions (a start, sub-recipes a decision started), in one statement. They start
 * with no snapshot (state_seq 0): their state is their log until the first is due.
 */
export async function insertExecutions(trx: Kysely<Database>, rows: readonly ExecutionWrite[]): Promise<void> {
  if (rows.length === 0) return;
  // json_to_recordset reads a JSON null as SQL NULL: output and error stay JSON null, as
  // single-row writes always stored them. json, not jsonb: output and error (json columns
  // since 0024) are stored as the text written here.
  await sql`/* sous:insertExecutions */
    INSERT INTO sous.execution
      (id, recipe_name, recipe_version, status, input, output, error, idempotency_key, parent_execution_id,
       parent_step_key, traceparent, reply_topic, state, last_seq, state_seq, written_by, created_at, updated_at,
       finished_at)
    SELECT id, recipe_name, recipe_version, status, coalesce(input, 'null'), coalesce(output, 'null'),
      coalesce(error, 'null'), idempotency_key, parent_execution_id, parent_step_key, traceparent, reply_topic, NULL,
      last_seq, 0, written_by, created_at, updated_at, finished_at
    FROM json_to_recordset(${JSON.stringify(rows.map(withoutState))}::json) AS r(id uuid, recipe_name text,
      recipe_version int, status text, input jsonb, output json, error json, idempotency_key text,
      parent_execution_id uuid, parent_step_key text, traceparent text, reply_topic text, last_seq int,
      written_by uuid, created_at timestamptz, updated_at timestamptz, finished_at timestamptz)`.execute(trx);
}

/**
 * The columns a decision changes on executions it locked, in one statement. Where a
 * snapshot is due (written by upsertSnapshots in the same transaction) state_seq moves to
 * last_seq and a state left on the row by a version before 0017 is cleared; elsewhere the
 * row keeps its state_seq (a row written before 0010 gets its last_seq before this
 * write, which is where its state is).
 */
export async function updateExecutions(trx: Kysely<Database>, rows: readonly ExecutionChange[]): Promise<void> {
  if (rows.length === 0) return;
  const changes = rows.map((r) => ({
    id: r.id,
    status: r.status,
    output: r.output,
    error: r.error,
    snapshot: r.snapshot,
    last_seq: r.last_seq,
    written_by: r.written_by,
    updated_at: r.updated_at,
    finished_at: r.finished_at,
  }));
  await sql`/* sous:updateExecutions */
    UPDATE sous.execution e SET status = u.status, output = coalesce(u.output, 'null'), error = coalesce(u.error, 'null'),
      state = CASE WHEN u.snapshot THEN NULL ELSE e.state END,
      state_seq = CASE WHEN u.snapshot THEN u.last_seq ELSE coalesce(e.state_seq, e.last_seq) END,
      last_seq = u.last_seq, written_by = u.written_by, updated_at = u.updated_at, finished_at = u.finished_at
    FROM json_to_recordset(${JSON.stringify(changes)}::json) AS u(id uuid, status text, output json, error json,
      snapshot boolean, last_seq int, written_by uuid, updated_at timestamptz, finished_at timestamptz)
    WHERE e.id = u.id`.execute(trx);
}

/** A state snapshot to store: the state after event `seq`. */
export interface SnapshotWrite {
  readonly execution_id: string;
  readonly seq: number;
  readonly state: ExecutionState;
}

/** Stores snapshots (replacing each execution's previous one), in one statement. */
export async function upsertSnapshots(trx: Kysely<Database>, rows: readonly SnapshotWrite[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`/* sous:upsertSnapshots */
    INSERT INTO sous.execution_snapshot (execution_id, seq, state, written_at)
    SELECT execution_id, seq, state, now()
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(execution_id uuid, seq int, state jsonb)
    ON CONFLICT (execution_id) DO UPDATE SET seq = EXCLUDED.seq, state = EXCLUDED.state, written_at = EXCLUDED.written_at`.execute(
    trx,
  );
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
