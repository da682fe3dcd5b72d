import type { EngineEvent } from './events.js';
import type { ExecutionState } from './state.js';

/** A sub-recipe execution its parent no longer waits for, and why. */
export interface ChildToCancel {
  readonly childExecutionId: string;
  readonly reason: string;
}

/**
 * The sub-recipe executions a decision's events abandon: every child still awaited by a
 * cancelled execution, and the child of a sub-recipe step the deadline cancelled. The
 * control plane cancels them in the same transaction (their own decisions then cancel
 * their children); `state` is the state after `events`.
 */
export function childrenToCancel(state: ExecutionState, events: readonly EngineEvent[]): ChildToCancel[] {
  const out = new Map<string, string>();
  for (const event of events) {
    if (event.type === 'ExecutionCancelled') {
      for (const st of Object.values(state.steps)) {
        if (st.status === 'open' && st.childExecutionId !== undefined && !out.has(st.childExecutionId))
          out.set(st.childExecutionId, `parent execution ${state.executionId} was cancelled`);
      }
    } else if (event.type === 'StepCancelled') {
      const child = state.steps[event.stepKey]?.childExecutionId;
      if (child !== undefined && !out.has(child))
        out.set(
          child,
          `step ${event.stepKey} of parent execution ${state.executionId} was cancelled: ${event.reason.code}`,
        );
    }
  }
  return [...out].map(([childExecutionId, reason]) => ({ childExecutionId, reason }));
}
