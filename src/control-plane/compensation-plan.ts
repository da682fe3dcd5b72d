import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { compensationPlan, type PlannedCompensation } from '../engine/compensation.js';
import type { ItemSource } from '../engine/item-source.js';
import type { ExecutionStatus } from '../engine/state.js';
import { selectItemWindow } from '../store/foreach-items.js';
import { selectFinishedItemSteps } from '../store/steps.js';
import { currentStates } from './execution-states.js';
import type { PlanCache } from './plan-cache.js';

/** What an execution would undo if it failed now. */
export interface CompensationPlanView {
  readonly executionId: string;
  readonly status: ExecutionStatus;
  /** In the order they would run (latest-completed step first). */
  readonly compensations: readonly PlannedCompensation[];
}

/** forEach items as stored (read only: the preview opens nothing). */
function storedItems(db: Kysely<Database>, executionId: string): ItemSource {
  return {
    get: async (forEachKey, index) => (await selectItemWindow(db, executionId, forEachKey, index, 1)).get(index),
    finished: (stepIds) => selectFinishedItemSteps(db, executionId, stepIds),
  };
}

/**
 * The compensations an execution would run if it failed now, with their inputs: the
 * engine's own computation on its current state, outside any transaction that writes
 * (nothing is locked, appended or sent). Undefined when there is no such execution.
 */
export async function compensationPlanOf(
  db: Kysely<Database>,
  plans: PlanCache,
  executionId: string,
): Promise<CompensationPlanView | undefined> {
  const id = executionId.toLowerCase();
  const state = (await currentStates(db, plans, [id])).get(id);
  if (state === undefined) return undefined;
  const plan = await plans.get(db, state.recipe, state.version);
  return {
    executionId: id,
    status: state.status,
    compensations: await compensationPlan(state, plan, storedItems(db, id)),
  };
}
