import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { AttemptRow, AttemptUpdate } from '../engine/projection.js';

/** New attempt rows of any number of executions, in one statement (input stays NULL: see AttemptRow). */
export async function insertAttempts(trx: Kysely<Database>, rows: readonly AttemptRow[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`/* sous:insertAttempts */
    INSERT INTO sous.step_attempt (id, execution_id, step_key, attempt, capability, region, status, worker_id, error,
      scheduled_at, started_at, finished_at, last_heartbeat_at)
    SELECT id, execution_id, step_key, attempt, capability, region, status, worker_id, error, scheduled_at,
      started_at, finished_at, last_heartbeat_at
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(id uuid, execution_id uuid, step_key text, attempt int,
      capability text, region text, status text, worker_id text, error jsonb, scheduled_at timestamptz,
      started_at timestamptz, finished_at timestamptz, last_heartbeat_at timestamptz)`.execute(trx);
}

/** A change to a stored attempt, with its execution (the attempt table's key leads with it). */
export type AttemptUpdateRow = AttemptUpdate & { readonly execution_id: string };

/**
 * Changes to existing attempts, in one statement: one update per attempt (the caller
 * merges several changes of one attempt, later ones winning); a column the update does
 * not name keeps its value.
 */
export async function updateAttempts(trx: Kysely<Database>, updates: readonly AttemptUpdateRow[]): Promise<void> {
  if (updates.length === 0) return;
  await sql`/* sous:updateAttempts */
    UPDATE sous.step_attempt a SET
      status = coalesce(u.status, a.status), worker_id = coalesce(u.worker_id, a.worker_id),
      error = coalesce(u.error, a.error), started_at = coalesce(u.started_at, a.started_at),
      finished_at = coalesce(u.finished_at, a.finished_at), last_heartbeat_at = coalesce(u.last_heartbeat_at, a.last_heartbeat_at)
    FROM jsonb_to_recordset(${JSON.stringify(updates)}::jsonb) AS u(execution_id uuid, id uuid, status text,
      worker_id text, error jsonb, started_at timestamptz, finished_at timestamptz, last_heartbeat_at timestamptz)
    WHERE a.execution_id = u.execution_id AND a.id = u.id`.execute(trx);
}
