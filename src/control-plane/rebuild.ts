import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { EngineEvent } from '../engine/events.js';
import { replay } from '../engine/evolve.js';
import { attemptRowsOf, executionRow, stepRowsOf } from '../engine/projection.js';
import { ExecutionNotFoundError } from './errors.js';
import type { PlanCache } from './plan-cache.js';

/**
 * Rebuilds an execution's row, its steps and attempts from its event log alone (the
 * tables are projections). Runs under the execution's row lock, so no decision
 * interleaves.
 */
export async function rebuildExecution(db: Kysely<Database>, plans: PlanCache, executionId: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const locked = await sql<{ recipe_name: string; recipe_version: number }>`
      SELECT recipe_name, recipe_version FROM sous.execution WHERE id = ${executionId} FOR UPDATE`.execute(trx);
    const head = locked.rows[0];
    if (head === undefined) throw new ExecutionNotFoundError(`no execution ${executionId}`);
    const plan = await plans.get(trx, head.recipe_name, head.recipe_version);
    const { rows } = await sql<{ data: EngineEvent }>`
      SELECT data FROM sous.execution_event WHERE execution_id = ${executionId} ORDER BY seq`.execute(trx);
    const events = rows.map((r) => r.data);
    const state = replay(events, plan);
    if (state === undefined) throw new ExecutionNotFoundError(`execution ${executionId} has no events`);
    const attempts = attemptRowsOf(executionId, events);
    const steps = [...stepRowsOf(executionId, undefined, events, plan).values()];
    const row = executionRow(state, events.length);

    await sql`DELETE FROM sous.step_attempt WHERE execution_id = ${executionId}`.execute(trx);
    await sql`DELETE FROM sous.step WHERE execution_id = ${executionId}`.execute(trx);
    await sql`
      UPDATE sous.execution SET status = ${row.status}, input = ${JSON.stringify(row.input)}::jsonb,
        output = ${JSON.stringify(row.output)}::jsonb, error = ${JSON.stringify(row.error)}::jsonb,
        state = ${JSON.stringify(row.state)}::jsonb, last_seq = ${row.last_seq}, created_at = ${row.created_at},
        updated_at = ${row.updated_at}, finished_at = ${row.finished_at}
      WHERE id = ${executionId}`.execute(trx);
    if (steps.length > 0) {
      await sql`
        INSERT INTO sous.step (execution_id, step_key, step_id, item_index, compensation, kind, status, attempts, output,
          error, child_execution_id, created_at, updated_at, finished_at)
        SELECT * FROM jsonb_to_recordset(${JSON.stringify(steps)}::jsonb) AS r(execution_id uuid, step_key text,
          step_id text, item_index int, compensation boolean, kind text, status text, attempts int, output jsonb,
          error jsonb, child_execution_id uuid, created_at timestamptz, updated_at timestamptz, finished_at timestamptz)`.execute(
        trx,
      );
    }
    if (attempts.size > 0) {
      await sql`
        INSERT INTO sous.step_attempt (id, execution_id, step_key, attempt, capability, input, region, status, worker_id,
          error, scheduled_at, started_at, finished_at, last_heartbeat_at)
        SELECT * FROM jsonb_to_recordset(${JSON.stringify([...attempts.values()])}::jsonb) AS r(id uuid,
          execution_id uuid, step_key text, attempt int, capability text, input jsonb, region text, status text,
          worker_id text, error jsonb, scheduled_at timestamptz, started_at timestamptz, finished_at timestamptz,
          last_heartbeat_at timestamptz)`.execute(trx);
    }
  });
}
