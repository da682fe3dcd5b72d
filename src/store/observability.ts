import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/*
 * Reads behind metrics, readiness and the API's backlog view. Each is one statement,
 * bounded by live work rather than by history: they run every few seconds.
 */

/** Attempts of one capability dispatched that no worker has reported started. */
export interface WaitingCommands {
  readonly capability: string;
  readonly waiting: number;
  readonly oldestScheduledAt: Date;
}

/**
 * Per capability, attempts still `scheduled` (the command is on its way or in a
 * topic), of executions not finished. Reached through the execution status index, so
 * the cost follows the executions in flight, never the attempts of finished ones.
 */
export async function selectWaitingCommands(db: Kysely<Database>): Promise<WaitingCommands[]> {
  const { rows } = await sql<{ capability: string; waiting: string; oldest: Date }>`
    SELECT a.capability, count(*) AS waiting, min(a.scheduled_at) AS oldest
    FROM sous.execution e
    JOIN sous.step_attempt a ON a.execution_id = e.id
    WHERE e.status IN ('running', 'paused', 'compensating') AND a.status = 'scheduled'
    GROUP BY a.capability
    ORDER BY a.capability`.execute(db);
  return rows.map((r) => ({ capability: r.capability, waiting: Number(r.waiting), oldestScheduledAt: r.oldest }));
}

/** The outbox's replication slot and the WAL position now, as byte offsets. */
export interface OutboxSlot {
  /** clock_timestamp() of the read. */
  readonly at: Date;
  /** pg_current_wal_lsn() as bytes from 0/0. */
  readonly currentLsn: number;
  /** Undefined when the slot does not exist (the connector was never registered). */
  readonly slot:
    | {
        readonly active: boolean;
        /** confirmed_flush_lsn as bytes from 0/0: the connector has delivered everything before it. */
        readonly confirmedLsn: number;
      }
    | undefined;
}

export async function selectOutboxSlot(db: Kysely<Database>, slotName: string): Promise<OutboxSlot> {
  const { rows } = await sql<{ at: Date; current: number; active: boolean | null; confirmed: number | null }>`
    SELECT clock_timestamp() AS at,
      pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS current,
      s.active,
      pg_wal_lsn_diff(s.confirmed_flush_lsn, '0/0')::float8 AS confirmed
    FROM (SELECT 1) AS one
    LEFT JOIN pg_replication_slots s ON s.slot_name = ${slotName}`.execute(db);
  const row = rows[0];
  if (row === undefined) throw new Error('no row from the outbox slot query');
  return {
    at: row.at,
    currentLsn: row.current,
    slot:
      row.active === null || row.confirmed === null ? undefined : { active: row.active, confirmedLsn: row.confirmed },
  };
}

/** Dead letters waiting for an operator, per capability and error code. */
export async function selectPendingDeadLetterCounts(
  db: Kysely<Database>,
): Promise<{ capability: string | null; errorCode: string; count: number }[]> {
  const { rows } = await sql<{ capability: string | null; error_code: string; count: string }>`
    SELECT capability, error_code, count(*) AS count FROM sous.dead_letter
    WHERE status = 'pending' GROUP BY capability, error_code`.execute(db);
  return rows.map((r) => ({ capability: r.capability, errorCode: r.error_code, count: Number(r.count) }));
}

/** Timer jobs of the task: due (their time has come, no process holds them) and all pending. */
export async function selectTimerCounts(
  db: Kysely<Database>,
  task: string,
): Promise<{ due: number; scheduled: number }> {
  const { rows } = await sql<{ due: string; scheduled: string }>`
    SELECT count(*) FILTER (WHERE run_at <= now() AND locked_at IS NULL) AS due, count(*) AS scheduled
    FROM graphile_worker.jobs
    WHERE task_identifier = ${task} AND attempts < max_attempts`.execute(db);
  return { due: Number(rows[0]?.due ?? 0), scheduled: Number(rows[0]?.scheduled ?? 0) };
}

/** Executions not finished, per status (finished ones are counted as they finish, not read from history). */
export async function selectActiveExecutionCounts(db: Kysely<Database>): Promise<Map<string, number>> {
  const { rows } = await sql<{ status: string; count: string }>`
    SELECT status, count(*) AS count FROM sous.execution
    WHERE status IN ('running', 'paused', 'compensating') GROUP BY status`.execute(db);
  return new Map(rows.map((r) => [r.status, Number(r.count)]));
}

/** Names of the applied sous migrations. */
export async function selectAppliedMigrations(db: Kysely<Database>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`SELECT name FROM sous.migration ORDER BY name`.execute(db);
  return rows.map((r) => r.name);
}

/** A round trip to PostgreSQL. */
export async function ping(db: Kysely<Database>): Promise<void> {
  await sql`SELECT 1`.execute(db);
}
