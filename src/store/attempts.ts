import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { AttemptRow, AttemptUpdate, StepRow } from '../engine/projection.js';

/*
 * Where attempts are stored (0022): a step's current attempt on its sous.step row, an
 * attempt a later one replaced in sous.superseded_attempt, written once as it ended.
 * sous.step_attempt shows both. `placeAttempts` decides, from a batch's net rows, which
 * change goes where; the statements below write them.
 */

/** A change to a stored attempt, with its execution (the attempt's rows are keyed by it). */
export type AttemptUpdateRow = AttemptUpdate & { readonly execution_id: string };

/** The current attempt's columns as a step row write carries them. */
export interface StepAttemptColumns {
  /**
   * true: the step has a new current attempt, and every column below replaces the row's;
   * false: changes to the row's current attempt `attempt_id` (null columns keep their value).
   */
  readonly new_attempt: boolean;
  readonly attempt_id: string;
  readonly capability: string | null;
  readonly region: string | null;
  readonly attempt_status: string | null;
  readonly worker_id: string | null;
  readonly attempt_error: unknown;
  readonly scheduled_at: string | null;
  readonly started_at: string | null;
  readonly attempt_finished_at: string | null;
  readonly last_heartbeat_at: string | null;
}

/** A step row as a batch writes it, with its current attempt's change when there is one. */
export type StepWrite = StepRow & Partial<StepAttemptColumns>;

/** A step whose stored current attempt a new attempt replaces. */
export interface StepKeyRow {
  readonly execution_id: string;
  readonly step_key: string;
}

/** Where a batch's attempt rows and changes go. */
export interface AttemptPlacement {
  /** The step rows, each with its current attempt's change. */
  readonly steps: StepWrite[];
  /** Steps whose stored current attempt is replaced: copied to superseded_attempt before the step rows are written. */
  readonly replacedStored: StepKeyRow[];
  /** Changes to those replaced stored attempts, applied as they are copied. */
  readonly replacedUpdates: AttemptUpdateRow[];
  /** Attempts both made and replaced by the batch (a retry scheduled at once): superseded as they are. */
  readonly replacedNew: AttemptRow[];
  /** Changes no step row write carries (none in the engine's batches): applied by attempt id, wherever it is. */
  readonly strayUpdates: AttemptUpdateRow[];
}

const keyOf = (executionId: string, stepKey: string) => `${executionId.toLowerCase()}\u0000${stepKey}`;

function group<T>(rows: readonly T[], key: (row: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const k = key(row);
    const list = groups.get(k);
    if (list === undefined) groups.set(k, [row]);
    else list.push(row);
  }
  return groups;
}

/** A new current attempt's columns: all of them, from its row. */
function newAttemptColumns(row: AttemptRow): StepAttemptColumns {
  return {
    new_attempt: true,
    attempt_id: row.id,
    capability: row.capability,
    region: row.region,
    attempt_status: row.status,
    worker_id: row.worker_id,
    attempt_error: row.error,
    scheduled_at: row.scheduled_at,
    started_at: row.started_at,
    attempt_finished_at: row.finished_at,
    last_heartbeat_at: row.last_heartbeat_at,
  };
}

/** A change to the stored current attempt: the columns it sets, null for the others. */
function changedAttemptColumns(update: AttemptUpdateRow): StepAttemptColumns {
  return {
    new_attempt: false,
    attempt_id: update.id,
    capability: null,
    region: null,
    attempt_status: update.status ?? null,
    worker_id: update.worker_id ?? null,
    attempt_error: update.error ?? null,
    scheduled_at: null,
    started_at: update.started_at ?? null,
    attempt_finished_at: update.finished_at ?? null,
    last_heartbeat_at: update.last_heartbeat_at ?? null,
  };
}

/**
 * Places a batch's net attempt rows (one insert or one update per attempt, as the batch
 * merged them) beside its step rows. Per step: its last new attempt becomes the row's
 * current attempt, and what it replaces (the stored current attempt, and new attempts
 * before it) becomes superseded; without a new attempt, the one change to the stored
 * current attempt goes with the step row's write. Pure: the store writes the result.
 */
export function placeAttempts(
  steps: readonly StepRow[],
  inserts: readonly AttemptRow[],
  updates: readonly AttemptUpdateRow[],
): AttemptPlacement {
  const insertsByStep = group(inserts, (r) => keyOf(r.execution_id, r.step_key));
  const updatesByStep = group(updates, (u) => keyOf(u.execution_id, u.step_key));
  const placement: AttemptPlacement = {
    steps: [],
    replacedStored: [],
    replacedUpdates: [],
    replacedNew: [],
    strayUpdates: [],
  };
  const placed = new Set<string>();
  for (const step of steps) {
    const key = keyOf(step.execution_id, step.step_key);
    placed.add(key);
    const made = [...(insertsByStep.get(key) ?? [])].sort((a, b) => a.attempt - b.attempt);
    const changed = updatesByStep.get(key) ?? [];
    const current = made.at(-1);
    if (current !== undefined) {
      placement.replacedNew.push(...made.slice(0, -1));
      // A first attempt replaces nothing stored (a rerun that starts a step again deletes
      // its rows first): only a later one costs the statement that supersedes.
      if ((made[0]?.attempt ?? 1) > 1) {
        placement.replacedStored.push({ execution_id: step.execution_id, step_key: step.step_key });
        placement.replacedUpdates.push(...changed);
      } else {
        placement.strayUpdates.push(...changed);
      }
      placement.steps.push({ ...step, ...newAttemptColumns(current) });
    } else if (changed.length === 1 && changed[0] !== undefined) {
      placement.steps.push({ ...step, ...changedAttemptColumns(changed[0]) });
    } else {
      placement.strayUpdates.push(...changed);
      placement.steps.push(step);
    }
  }
  // Rows of steps the batch writes no row for (the engine touches the step of every
  // attempt it changes, so none): kept where the view still shows them.
  for (const [key, rows] of insertsByStep) if (!placed.has(key)) placement.replacedNew.push(...rows);
  for (const [key, rows] of updatesByStep) if (!placed.has(key)) placement.strayUpdates.push(...rows);
  return placement;
}

/**
 * Copies the stored current attempts of these steps to sous.superseded_attempt, with the
 * batch's changes to them applied: before the step rows get their new attempts.
 */
export async function supersedeStoredAttempts(
  trx: Kysely<Database>,
  steps: readonly StepKeyRow[],
  updates: readonly AttemptUpdateRow[],
): Promise<void> {
  if (steps.length === 0) return;
  await sql`/* sous:supersedeStoredAttempts */
    INSERT INTO sous.superseded_attempt (id, execution_id, step_key, attempt, capability, region, status, worker_id,
      error, scheduled_at, started_at, finished_at, last_heartbeat_at)
    SELECT s.attempt_id, s.execution_id, s.step_key, s.attempts, s.capability, s.region,
      coalesce(u.status, s.attempt_status), coalesce(u.worker_id, s.worker_id), coalesce(u.error, s.attempt_error),
      s.scheduled_at, coalesce(u.started_at, s.started_at), coalesce(u.finished_at, s.attempt_finished_at),
      coalesce(u.last_heartbeat_at, s.last_heartbeat_at)
    FROM jsonb_to_recordset(${JSON.stringify(steps)}::jsonb) AS k(execution_id uuid, step_key text)
    JOIN sous.step AS s ON s.execution_id = k.execution_id AND s.step_key = k.step_key
    LEFT JOIN jsonb_to_recordset(${JSON.stringify(updates)}::jsonb) AS u(execution_id uuid, id uuid, status text,
      worker_id text, error jsonb, started_at timestamptz, finished_at timestamptz, last_heartbeat_at timestamptz)
      ON u.execution_id = s.execution_id AND u.id = s.attempt_id
    WHERE s.attempt_id IS NOT NULL`.execute(trx);
}

/** Attempt rows written to sous.superseded_attempt as they are (input stays NULL: see AttemptRow). */
export async function insertSupersededAttempts(trx: Kysely<Database>, rows: readonly AttemptRow[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`/* sous:insertSupersededAttempts */
    INSERT INTO sous.superseded_attempt (id, execution_id, step_key, attempt, capability, region, status, worker_id,
      error, scheduled_at, started_at, finished_at, last_heartbeat_at)
    SELECT id, execution_id, step_key, attempt, capability, region, status, worker_id, error, scheduled_at,
      started_at, finished_at, last_heartbeat_at
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(id uuid, execution_id uuid, step_key text, attempt int,
      capability text, region text, status text, worker_id text, error jsonb, scheduled_at timestamptz,
      started_at timestamptz, finished_at timestamptz, last_heartbeat_at timestamptz)`.execute(trx);
}

/**
 * Changes to stored attempts by id, wherever each is: the current attempt of its step row,
 * or a superseded one. A column the change does not name keeps its value.
 */
export async function updateStoredAttempts(trx: Kysely<Database>, updates: readonly AttemptUpdateRow[]): Promise<void> {
  if (updates.length === 0) return;
  await sql`/* sous:updateStoredAttempts */
    WITH u AS (
      SELECT * FROM jsonb_to_recordset(${JSON.stringify(updates)}::jsonb) AS u(execution_id uuid, step_key text, id uuid,
        status text, worker_id text, error jsonb, started_at timestamptz, finished_at timestamptz,
        last_heartbeat_at timestamptz)
    ),
    on_step AS (
      UPDATE sous.step AS s SET
        attempt_status = coalesce(u.status, s.attempt_status), worker_id = coalesce(u.worker_id, s.worker_id),
        attempt_error = coalesce(u.error, s.attempt_error), started_at = coalesce(u.started_at, s.started_at),
        attempt_finished_at = coalesce(u.finished_at, s.attempt_finished_at),
        last_heartbeat_at = coalesce(u.last_heartbeat_at, s.last_heartbeat_at)
      FROM u WHERE s.execution_id = u.execution_id AND s.step_key = u.step_key AND s.attempt_id = u.id
      RETURNING 1
    ),
    superseded AS (
      UPDATE sous.superseded_attempt AS a SET
        status = coalesce(u.status, a.status), worker_id = coalesce(u.worker_id, a.worker_id),
        error = coalesce(u.error, a.error), started_at = coalesce(u.started_at, a.started_at),
        finished_at = coalesce(u.finished_at, a.finished_at),
        last_heartbeat_at = coalesce(u.last_heartbeat_at, a.last_heartbeat_at)
      FROM u WHERE a.execution_id = u.execution_id AND a.id = u.id
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM on_step) + (SELECT count(*) FROM superseded) AS updated`.execute(trx);
}
