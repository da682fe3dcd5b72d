import type { ForEachStep, RecipePlan, Step, TaskStep } from '../recipe/plan.js';

export interface IndexedStep {
  readonly step: Step;
  /** Set for the body steps of a forEach. */
  readonly forEach?: { readonly key: string; readonly position: number; readonly next?: string };
}

const cache = new WeakMap<RecipePlan, ReadonlyMap<string, IndexedStep>>();

/** Every step of a plan by id (ids are unique across the recipe), built once per plan. */
export function indexPlan(plan: RecipePlan): ReadonlyMap<string, IndexedStep> {
  const cached = cache.get(plan);
  if (cached !== undefined) return cached;
  const index = new Map<string, IndexedStep>();
  const visit = (steps: readonly Step[]) => {
    for (const step of steps) {
      index.set(step.id, { step });
      if (step.type === 'parallel') step.branches.forEach(visit);
      if (step.type === 'forEach') indexBody(step, index);
    }
  };
  visit(plan.steps);
  // onFailure and finally steps: tasks, with retries and outputs like any other.
  visit(plan.onFailure ?? []);
  visit(plan.finally ?? []);
  cache.set(plan, index);
  return index;
}

function indexBody(step: ForEachStep, index: Map<string, IndexedStep>) {
  step.steps.forEach((body, position) => {
    index.set(body.id, { step: body, forEach: { key: step.id, position, next: step.steps[position + 1]?.id } });
  });
}

const COMPENSATE = '~compensate';

/** Key of a forEach body step's run for one item. */
export function itemKey(stepId: string, index: number): string {
  return `${stepId}[${index}]`;
}

export function compensationKey(stepKey: string): string {
  return `${stepKey}${COMPENSATE}`;
}

/** Splits a step key into the step id, the item index and whether it is a compensation. */
export function parseStepKey(key: string): { stepId: string; itemIndex?: number; compensation: boolean } {
  const compensation = key.endsWith(COMPENSATE);
  const base = compensation ? key.slice(0, -COMPENSATE.length) : key;
  const match = /^(.*)\[(\d+)\]$/.exec(base);
  if (match?.[1] !== undefined && match[2] !== undefined) {
    return { stepId: match[1], itemIndex: Number(match[2]), compensation };
  }
  return { stepId: base, compensation };
}

/**
 * A total order on step keys: by step id, then item index as a number, the step before
 * its compensation. Decisions that pick among several steps take them in this order, not
 * the state record's: a state read back from jsonb has its keys in another order, and
 * the decision on it must be the same.
 */
export function compareStepKeys(a: string, b: string): number {
  const pa = parseStepKey(a);
  const pb = parseStepKey(b);
  if (pa.stepId !== pb.stepId) return pa.stepId < pb.stepId ? -1 : 1;
  const ia = pa.itemIndex ?? -1;
  const ib = pb.itemIndex ?? -1;
  if (ia !== ib) return ia - ib;
  return Number(pa.compensation) - Number(pb.compensation);
}

export function taskStep(plan: RecipePlan, stepId: string): TaskStep | undefined {
  const entry = indexPlan(plan).get(stepId);
  return entry?.step.type === 'task' ? entry.step : undefined;
}
