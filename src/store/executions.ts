import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { ExecutionRow } from '../engine/projection.js';
import type { ExecutionState, ExecutionStatus } from '../engine/state.js';

/** What a decision needs of an execution it has locked. */
export interface LockedExecution {
  readonly id: string;
  readonly status: ExecutionStatus;
  readonly state: ExecutionState;
  readonly last_seq: number;
  readonly traceparent: string | null;
  readonly reply_topic: string;
}

/** An execution row as a decision writes it: the projection plus what is fixed at start. */
export interface ExecutionWrite extends ExecutionRow {
  readonly traceparent: string | null;
  readonly reply_topic: string;
}

/**
 * Locks executions for a decision, in id order in one statement: two transactions
 * locking overlapping sets take the locks in the same order, so they queue instead of
 * deadlocking, and one execution is decided by one transaction at a time whichever
 * process runs it. Executions that do not exist are absent from the map.
 */
export async function lockExecutions(
  trx: Kysely<Database>,
  executionIds: readonly string[],
): Promise<Map<string, LockedExecution>> {
  if (executionIds.length === 0) return new Map();
  const { rows } = await sql<LockedExecution>`/* sous:lockExecutions */
    SELECT id, status, state, last_seq, traceparent, reply_topic FROM sous.execution
    WHERE id = ANY(${[...executionIds]}::uuid[]) ORDER BY id FOR UPDATE`.execute(trx);
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
       parent_step_key, traceparent, reply_topic, state, last_seq, created_at, updated_at, finished_at)
    SELECT id, recipe_name, recipe_version, status, coalesce(input, 'null'), coalesce(output, 'null'),
      coalesce(error, 'null'), idempotency_key, parent_execution_id, parent_step_key, traceparent, reply_topic, state,
      last_seq, created_at, updated_at, finished_at
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(id uuid, recipe_name text, recipe_version int,
      status text, input jsonb, output jsonb, error jsonb, idempotency_key text, parent_execution_id uuid,
      parent_step_key text, traceparent text, reply_topic text, state jsonb, last_seq int, created_at timestamptz,
      updated_at timestamptz, finished_at timestamptz)`.execute(trx);
}

/** The columns a decision changes on executions it locked, in one statement. */
export async function updateExecutions(trx: Kysely<Database>, rows: readonly ExecutionRow[]): Promise<void> {
  if (rows.length === 0) return;
  const changes = rows.map((r) => ({
    id: r.id,
    status: r.status,
    output: r.output,
    error: r.error,
    state: r.state,
    last_seq: r.last_seq,
    updated_at: r.updated_at,
    finished_at: r.finished_at,
  }));
  await sql`/* sous:updateExecutions */
    UPDATE sous.execution e SET status = u.status, output = coalesce(u.output, 'null'), error = coalesce(u.error, 'null'),
      state = u.state, last_seq = u.last_seq, updated_at = u.updated_at, finished_at = u.finished_at
    FROM jsonb_to_recordset(${JSON.stringify(changes)}::jsonb) AS u(id uuid, status text, output jsonb, error jsonb,
      state jsonb, last_seq int, updated_at timestamptz, finished_at timestamptz)
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
