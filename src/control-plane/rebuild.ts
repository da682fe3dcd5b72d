import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { replay } from '../engine/evolve.js';
import { attemptRowsOf, executionRow, stepRowsOf } from '../engine/projection.js';
import { replaceProjection } from '../store/consistency.js';
import { selectEvents } from '../store/events.js';
import { lockExecutionHeads } from '../store/executions.js';
import { ExecutionNotFoundError } from './errors.js';
import type { PlanCache } from './plan-cache.js';

/**
 * Rebuilds an execution's row, its steps and attempts from its event log alone (the
 * tables are projections). Runs under the execution's lock, so no decision
 * interleaves.
 */
export async function rebuildExecution(db: Kysely<Database>, plans: PlanCache, executionId: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const head = (await lockExecutionHeads(trx, [executionId.toLowerCase()])).get(executionId.toLowerCase());
    if (head === undefined) throw new ExecutionNotFoundError(`no execution ${executionId}`);
    const plan = await plans.get(trx, head.recipe_name, head.recipe_version);
    const events = await selectEvents(trx, head.id);
    const state = replay(events, plan);
    if (state === undefined) throw new ExecutionNotFoundError(`execution ${executionId} has no events`);
    const attempts = attemptRowsOf(executionId, events);
    const steps = [...stepRowsOf(executionId, undefined, events, plan).values()];
    const row = executionRow(state, events.length);

    await replaceProjection(trx, row, steps, [...attempts.values()]);
  });
}
