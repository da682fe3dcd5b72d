import type { Decision } from '../engine/decide.js';
import { parseStepKey, taskStep } from '../engine/plan-index.js';
import type { RecipePlan } from '../recipe/plan.js';

/** What happened to one attempt in a committed decision, as metrics count it. */
export interface StepTransition {
  readonly kind: 'scheduled' | 'started' | 'completed' | 'failed';
  readonly capability: string;
  readonly stepExecutionId: string | undefined;
}

export interface ObservedChanges {
  readonly steps: StepTransition[];
  readonly executionsStarted: number;
  readonly executionsFinished: ('completed' | 'failed' | 'cancelled' | 'timed_out')[];
}

/** Label of a step whose capability cannot be found (its plan is not at hand). */
export const UNKNOWN_CAPABILITY = 'unknown';

/** The capability a step key's commands go to: a compensation's own, else the task's. */
export function capabilityOf(plan: RecipePlan | undefined, stepKey: string): string {
  if (plan === undefined) return UNKNOWN_CAPABILITY;
  const { stepId, compensation } = parseStepKey(stepKey);
  const step = taskStep(plan, stepId);
  if (step === undefined) return UNKNOWN_CAPABILITY;
  return compensation ? (step.compensate?.capability ?? step.capability) : step.capability;
}

/**
 * The attempt and execution changes of decisions, read from their events: each
 * transition is in exactly one committed decision, so counting here counts it once
 * across every control-plane process. A final reply carrying `startedAt` (a short
 * command, which sent no `step.started`) both starts and finishes its attempt.
 */
export function observedChanges(
  decisions: Iterable<Decision>,
  planOf: (recipe: string, version: number) => RecipePlan | undefined,
): ObservedChanges {
  const steps: StepTransition[] = [];
  const executionsFinished: ObservedChanges['executionsFinished'] = [];
  let executionsStarted = 0;
  for (const decision of decisions) {
    const state = decision.state;
    if (state === undefined) continue;
    const plan = planOf(state.recipe, state.version);
    const step = (kind: StepTransition['kind'], stepKey: string, stepExecutionId: string | undefined) =>
      steps.push({ kind, capability: capabilityOf(plan, stepKey), stepExecutionId });
    for (const e of decision.events) {
      switch (e.type) {
        case 'StepScheduled':
          steps.push({ kind: 'scheduled', capability: e.capability, stepExecutionId: e.stepExecutionId });
          break;
        case 'StepStarted':
          step('started', e.stepKey, e.stepExecutionId);
          break;
        case 'StepCompleted':
          // An operator's skip finishes no attempt.
          if (e.stepExecutionId === undefined || e.skippedByOperator === true) break;
          if (e.startedAt !== undefined) step('started', e.stepKey, e.stepExecutionId);
          step('completed', e.stepKey, e.stepExecutionId);
          break;
        case 'StepFailed':
          if (e.stepExecutionId === undefined) break;
          if (e.startedAt !== undefined) step('started', e.stepKey, e.stepExecutionId);
          step('failed', e.stepKey, e.stepExecutionId);
          break;
        case 'StepDeadLettered':
          if (e.startedAt !== undefined) step('started', e.stepKey, e.stepExecutionId);
          step('failed', e.stepKey, e.stepExecutionId);
          break;
        case 'ExecutionStarted':
          executionsStarted++;
          break;
        case 'ExecutionCompleted':
          executionsFinished.push('completed');
          break;
        case 'ExecutionFailed':
          executionsFinished.push(e.timedOut === true ? 'timed_out' : 'failed');
          break;
        case 'ExecutionCancelled':
          executionsFinished.push('cancelled');
          break;
        default:
          break;
      }
    }
  }
  return { steps, executionsStarted, executionsFinished };
}
