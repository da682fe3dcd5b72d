import type { StepError } from '../protocol/messages.js';
import type { RecipePlan, TaskStep } from '../recipe/plan.js';
import type { EngineEvent, Finishing, HandlerFailure } from './events.js';
import type { ExecutionState, StepStatus } from './state.js';

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

type Event<T extends EngineEvent['type']> = Extract<EngineEvent, { type: T }>;

/**
 * What the deadline cancels: every step in flight or waiting, with the attempt it
 * abandons. In key order, not the record's: a state read back from jsonb has its keys
 * reordered, and the decision on it must be the same.
 */
export function stepsToCancel(state: ExecutionState, at: string, reason: StepError): Event<'StepCancelled'>[] {
  return Object.keys(state.steps)
    .sort()
    .flatMap((stepKey) => {
      const st = state.steps[stepKey];
      if (st === undefined || !IN_FLIGHT.includes(st.status)) return [];
      const attempt = st.stepExecutionId;
      const inFlight = attempt !== undefined && state.attempts[attempt] === stepKey;
      return [
        { type: 'StepCancelled' as const, at, stepKey, ...(inFlight ? { stepExecutionId: attempt } : {}), reason },
      ];
    });
}

/** The execution's last event, as `finishing` says, with the handlers that failed. */
export function finalEvent(
  at: string,
  finishing: Finishing,
  handlerFailures: readonly HandlerFailure[],
): Event<'ExecutionCompleted'> | Event<'ExecutionFailed'> {
  const failures = handlerFailures.length === 0 ? {} : { handlerFailures };
  if (finishing.outcome === 'completed') {
    return { type: 'ExecutionCompleted', at, output: finishing.output ?? null, ...failures };
  }
  return {
    type: 'ExecutionFailed',
    at,
    error: finishing.error ?? { code: 'step_failed', message: 'a step failed', retryable: false },
    compensated: finishing.compensated ?? false,
    ...(finishing.outcome === 'timed_out' ? { timedOut: true } : {}),
    ...failures,
  };
}
