import type { ExpressionScope, RecipePlan } from '../recipe/plan.js';
import { indexPlan, itemKey } from './plan-index.js';
import type { ExecutionState } from './state.js';

/*
 * What an expression sees, as a function of the state: shared by `decide` and by the
 * read-only questions asked of a state (the compensation plan), so both evaluate a
 * step's expressions alike.
 */

/** Outputs visible to expressions: completed steps by output name, plus the item's own. */
export function outputsOf(
  state: ExecutionState,
  plan: RecipePlan,
  item: number | undefined,
  forEachKey?: string,
): Record<string, unknown> {
  const outputs: Record<string, unknown> = {};
  for (const [id, entry] of indexPlan(plan)) {
    const step = entry.step;
    if (!('output' in step)) continue;
    if (entry.forEach !== undefined) {
      if (item === undefined || entry.forEach.key !== forEachKey) continue;
      const st = state.steps[itemKey(id, item)];
      if (st?.status === 'completed') outputs[step.output] = st.output;
      continue;
    }
    const st = state.steps[id];
    if (st?.status === 'completed') outputs[step.output] = st.output;
  }
  return outputs;
}

/**
 * The scope of a step; for a forEach body step, with its item and the item's outputs;
 * once the execution is finishing (its onFailure and finally steps run), with how it
 * ended and the failure (null after a completed execution).
 */
export async function scopeOf(
  state: ExecutionState,
  plan: RecipePlan,
  item: number | undefined,
  stepId: string | undefined,
  readItem: (forEachKey: string, index: number) => Promise<unknown>,
): Promise<ExpressionScope> {
  const forEachKey = stepId === undefined ? undefined : indexPlan(plan).get(stepId)?.forEach?.key;
  const finishing = state.finishing;
  const base: ExpressionScope = {
    input: state.input,
    outputs: outputsOf(state, plan, item, forEachKey),
    execution: { id: state.executionId, recipe: state.recipe, version: state.version },
    ...(finishing === undefined ? {} : { failure: finishing.error ?? null, outcome: finishing.outcome }),
  };
  if (item === undefined || forEachKey === undefined) return base;
  return { ...base, item: await readItem(forEachKey, item), index: item };
}
