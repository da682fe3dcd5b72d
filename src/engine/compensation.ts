import type { StepError } from '../protocol/messages.js';
import { evaluateInput } from '../recipe/expressions.js';
import type { RecipePlan } from '../recipe/plan.js';
import type { ItemSource } from './item-source.js';
import { compareStepKeys, compensationKey, parseStepKey, taskStep } from './plan-index.js';
import { scopeOf } from './scope.js';
import { type ExecutionState, type StepStatus, TERMINAL_STATUSES } from './state.js';

/** Completed steps that have a compensation, latest completion first: the order a saga undoes them. */
export function compensableKeys(state: ExecutionState, plan: RecipePlan): string[] {
  return Object.entries(state.steps)
    .filter(([key, st]) => {
      const { compensation, stepId } = parseStepKey(key);
      return !compensation && st.status === 'completed' && taskStep(plan, stepId)?.compensate !== undefined;
    })
    .sort(([ka, a], [kb, b]) => (b.completionSeq ?? 0) - (a.completionSeq ?? 0) || compareStepKeys(ka, kb))
    .map(([key]) => key);
}

/** One compensation the execution would run if it failed now. */
export interface PlannedCompensation {
  /** 1 for the first to run. */
  readonly order: number;
  /** The step it undoes (`<id>` or `<id>[<item>]`). */
  readonly stepKey: string;
  /** Its own step key (`<stepKey>~compensate`). */
  readonly compensationKey: string;
  readonly stepId: string;
  readonly itemIndex?: number;
  readonly capability: string;
  /** The input it would be sent, evaluated now; null when its expression fails (see inputError). */
  readonly input: unknown;
  /** Why the input could not be evaluated: the compensation would fail the same way. */
  readonly inputError?: StepError;
  /** `pending` (not begun), or the state of a compensation already begun (the execution is compensating). */
  readonly status: 'pending' | StepStatus;
}

/**
 * The compensations an execution would run if it failed now, in the order it would run
 * them, with their inputs: a read of the state, changing nothing. A finished execution
 * runs none. A compensation already completed is left out; one in flight or failed is
 * listed with its status (the execution is compensating already).
 */
export async function compensationPlan(
  state: ExecutionState,
  plan: RecipePlan,
  items: ItemSource,
): Promise<PlannedCompensation[]> {
  if (TERMINAL_STATUSES.includes(state.status)) return [];
  const planned: PlannedCompensation[] = [];
  for (const key of compensableKeys(state, plan)) {
    const ck = compensationKey(key);
    const begun = state.steps[ck];
    if (begun?.status === 'completed') continue;
    const { stepId, itemIndex } = parseStepKey(key);
    const step = taskStep(plan, stepId);
    const compensate = step?.compensate;
    if (compensate === undefined) continue;
    let input: unknown = null;
    let inputError: StepError | undefined;
    try {
      const scope = await scopeOf(state, plan, itemIndex, stepId, (k, i) => items.get(k, i));
      input = (await evaluateInput(compensate.input, scope)) ?? null;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      inputError = { code: 'expression_failed', message: `step ${ck}: ${message}`, retryable: false };
    }
    planned.push({
      order: planned.length + 1,
      stepKey: key,
      compensationKey: ck,
      stepId,
      ...(itemIndex === undefined ? {} : { itemIndex }),
      capability: compensate.capability,
      input,
      ...(inputError === undefined ? {} : { inputError }),
      status: begun?.status ?? 'pending',
    });
  }
  return planned;
}
