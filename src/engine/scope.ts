import type { ExpressionScope, RecipePlan } from '../recipe/plan.js';
import { indexPlan, itemKey } from './plan-index.js';
import type { ExecutionState } from './state.js';

/*
 * What an expression sees, as a function of the state: shared by `decide` and by the
 * read-only questions asked of a state (the compensation plan), so both evaluate a
 * step's expressions alike.
 */

/** A step whose output expressions can see: its id, output name and forEach (if a body step). */
interface OutputEntry {
  readonly id: string;
  readonly output: string;
  readonly forEachKey: string | undefined;
}

const outputEntries = new WeakMap<RecipePlan, readonly OutputEntry[]>();

/** The plan's steps that have an output name, in plan order, listed once per plan. */
function outputEntriesOf(plan: RecipePlan): readonly OutputEntry[] {
  let entries = outputEntries.get(plan);
  if (entries === undefined) {
    entries = [...indexPlan(plan)].flatMap(([id, { step, forEach }]) =>
      'output' in step ? [{ id, output: step.output, forEachKey: forEach?.key }] : [],
    );
    outputEntries.set(plan, entries);
  }
  return entries;
}

/** Outputs visible to expressions: completed steps by output name, plus the item's own. */
export function outputsOf(
  state: ExecutionState,
  plan: RecipePlan,
  item: number | undefined,
  forEachKey?: string,
): Record<string, unknown> {
  const outputs: Record<string, unknown> = {};
  const steps = state.steps;
  for (const entry of outputEntriesOf(plan)) {
    if (entry.forEachKey !== undefined) {
      if (item === undefined || entry.forEachKey !== forEachKey) continue;
      const st = steps[itemKey(entry.id, item)];
      if (st?.status === 'completed') outputs[entry.output] = st.output;
      continue;
    }
    const st = steps[entry.id];
    if (st?.status === 'completed') outputs[entry.output] = st.output;
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
