import type { StepError } from '../protocol/messages.js';
import type { RecipePlan, TaskStep } from '../recipe/plan.js';
import type { Finishing } from './events.js';
import type { StepStatus } from './state.js';

/*
 * How an execution ends: its onFailure and finally steps, and its deadline. `decide`
 * drives them; what they are is decided here.
 */

/**
 * The steps run once an execution is over, in order: `onFailure` after a failed or
 * timed-out execution, then `finally` after any (not after a cancel: a cancel stops
 * everything at once).
 */
export function handlerSteps(plan: RecipePlan, outcome: Finishing['outcome']): readonly TaskStep[] {
  const onFailure = outcome === 'completed' ? [] : (plan.onFailure ?? []);
  return [...onFailure, ...(plan.finally ?? [])];
}

/** Statuses of a step in flight or waiting: what a deadline cancels. */
export const IN_FLIGHT: readonly StepStatus[] = [
  'scheduled',
  'running',
  'retry_wait',
  'retry_ready',
  'dead_lettered',
  'open',
];

/** The code of a timed-out execution's error. */
export const DEADLINE_CODE = 'timeout.execution_deadline';

/** The failure a timed-out execution ends with. */
export function deadlineError(deadlineAt: string): StepError {
  return {
    code: DEADLINE_CODE,
    message: `the execution's deadline (${deadlineAt}) passed: steps in flight were cancelled`,
    retryable: false,
    details: { deadlineAt },
  };
}
