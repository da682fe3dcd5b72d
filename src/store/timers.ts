import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** An engine timer, fired by a graphile-worker job. */
export interface TimerJob {
  readonly executionId: string;
  readonly timerId: string;
  /** ISO instant. */
  readonly fireAt: string;
}

/**
 * Adds timer jobs in one statement (graphile_worker.add_jobs takes an array). The timer
 * id is the job key: adding a timer again replaces its job instead of doubling it.
 */
export async function addTimerJobs(trx: Kysely<Database>, task: string, timers: readonly TimerJob[]): Promise<void> {
  if (timers.length === 0) return;
  await sql`/* sous:addTimerJobs */
    SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(
      SELECT ROW(${task}::text, json_build_object('executionId', t.execution_id, 'timerId', t.timer_id), NULL::text,
        t.fire_at, 25::smallint, t.timer_id, NULL::smallint, NULL::text[])::graphile_worker.job_spec
      FROM unnest(${timers.map((t) => t.executionId)}::text[], ${timers.map((t) => t.timerId)}::text[],
        ${timers.map((t) => t.fireAt)}::timestamptz[]) AS t(execution_id, timer_id, fire_at)))`.execute(trx);
}

/** Removes the jobs of cleared timers in one statement (a job already run is simply not found). */
export async function removeTimerJobs(trx: Kysely<Database>, timerIds: readonly string[]): Promise<void> {
  if (timerIds.length === 0) return;
  await sql`/* sous:removeTimerJobs */
    SELECT count(graphile_worker.remove_job(k)) FROM unnest(${[...timerIds]}::text[]) AS k`.execute(trx);
}
