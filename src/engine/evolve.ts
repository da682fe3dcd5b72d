import type { RecipePlan } from '../recipe/plan.js';
import type { EngineEvent } from './events.js';
import { indexPlan, itemKey, parseStepKey } from './plan-index.js';
import type { ExecutionState, ForEachState, StepState } from './state.js';

/** The state after one event, and the item step states that event took out of it. */
export interface Evolved {
  readonly state: ExecutionState;
  /** Step states retired by the event (a forEach item that finished): the step rows keep them. */
  readonly retired: Readonly<Record<string, StepState>>;
}

/**
 * Folds one event into the state. Pure: replaying an execution's events from the first
 * gives the state the control plane stored (the event log is the source of truth).
 */
export function evolve(state: ExecutionState | undefined, event: EngineEvent, plan: RecipePlan): ExecutionState {
  return evolveRetiring(state, event, plan).state;
}

/**
 * `evolve`, also giving the step states the event retired. A forEach item whose last body
 * step completed or was skipped leaves the state: otherwise every decision of a long list
 * would read and rewrite every finished item (quadratic in the list). Items of a body
 * with a compensation stay, since a failing saga undoes them in completion order.
 */
export function evolveRetiring(state: ExecutionState | undefined, event: EngineEvent, plan: RecipePlan): Evolved {
  const next = fold(state, event, plan);
  const keys = finishedItemKeys(event, plan);
  if (keys.length === 0) return { state: next, retired: {} };
  const leaving = new Set(keys);
  const retired: Record<string, StepState> = {};
  const steps: Record<string, StepState> = {};
  for (const [key, st] of Object.entries(next.steps)) {
    if (leaving.has(key)) retired[key] = st;
    else steps[key] = st;
  }
  return { state: { ...next, steps }, retired };
}

/** Step keys of the item whose last body step this event finished, when they may leave the state. */
function finishedItemKeys(event: EngineEvent, plan: RecipePlan): string[] {
  if (event.type !== 'StepCompleted' && event.type !== 'StepSkipped') return [];
  const { stepId, itemIndex, compensation } = parseStepKey(event.stepKey);
  if (itemIndex === undefined || compensation) return [];
  const index = indexPlan(plan);
  const place = index.get(stepId)?.forEach;
  if (place === undefined || place.next !== undefined) return [];
  const container = index.get(place.key)?.step;
  if (container?.type !== 'forEach') return [];
  if (container.steps.some((b) => 'compensate' in b && b.compensate !== undefined)) return [];
  return container.steps.map((b) => itemKey(b.id, itemIndex));
}

function fold(state: ExecutionState | undefined, event: EngineEvent, plan: RecipePlan): ExecutionState {
  if (event.type === 'ExecutionStarted') {
    return {
      executionId: event.executionId,
      recipe: event.recipe,
      version: event.version,
      status: 'running',
      input: event.input,
      ...(event.idempotencyKey === undefined ? {} : { idempotencyKey: event.idempotencyKey }),
      ...(event.parent === undefined ? {} : { parent: event.parent }),
      steps: {},
      attempts: {},
      forEach: {},
      timers: {},
      signals: {},
      completions: 0,
      createdAt: event.at,
      updatedAt: event.at,
    };
  }
  if (state === undefined) throw new Error(`event ${event.type} before ExecutionStarted`);
  const s = { ...state, updatedAt: event.at };

  const setStep = (key: string, change: Partial<StepState>): ExecutionState['steps'] => {
    const previous: StepState = s.steps[key] ?? {
      stepId: parseStepKey(key).stepId,
      status: 'scheduled',
      attempt: 0,
      createdAt: event.at,
      updatedAt: event.at,
    };
    const next: StepState = { ...previous, ...change, updatedAt: event.at };
    const finished = next.status === 'completed' || next.status === 'skipped' || next.status === 'failed';
    if (finished) return { ...s.steps, [key]: { ...next, finishedAt: event.at } };
    const { finishedAt: _unset, ...open } = next;
    return { ...s.steps, [key]: open };
  };
  const withoutAttempt = (stepExecutionId: string | undefined) => {
    if (stepExecutionId === undefined) return s.attempts;
    const { [stepExecutionId]: _gone, ...rest } = s.attempts;
    return rest;
  };
  /** Moves a forEach item along its buckets when one of its body steps changes. */
  const bucket = (key: string, change: 'dispatched' | 'finished' | 'skipped' | 'failed' | 'retrying') => {
    const { stepId, itemIndex, compensation } = parseStepKey(key);
    if (itemIndex === undefined || compensation) return s.forEach;
    const place = indexPlan(plan).get(stepId)?.forEach;
    const fe = place === undefined ? undefined : s.forEach[place.key];
    if (place === undefined || fe === undefined) return s.forEach;
    const ready = { ...fe.ready };
    const inFlight = { ...fe.inFlight };
    let done = fe.done;
    let failed = fe.failed;
    let entered = fe.entered;
    // Leaving the wait for a body step: the first step's wait is the cursor.
    const leaveWait = () => {
      if (place.position === 0) entered = Math.max(entered, itemIndex + 1);
      else ready[stepId] = (ready[stepId] ?? []).filter((i) => i !== itemIndex);
    };
    if (change === 'dispatched') {
      leaveWait();
      inFlight[stepId] = (inFlight[stepId] ?? 0) + 1;
    } else if (change === 'finished' || change === 'skipped') {
      if (change === 'finished') inFlight[stepId] = Math.max(0, (inFlight[stepId] ?? 0) - 1);
      else leaveWait();
      if (place.next === undefined) done += 1;
      else ready[place.next] = [...(ready[place.next] ?? []), itemIndex];
    } else if (change === 'failed') {
      inFlight[stepId] = Math.max(0, (inFlight[stepId] ?? 0) - 1);
      failed = failed ?? key;
    }
    const next: ForEachState = { ...fe, entered, ready, inFlight, done, ...(failed === undefined ? {} : { failed }) };
    return { ...s.forEach, [place.key]: next };
  };

  switch (event.type) {
    case 'StepScheduled': {
      const previous = s.steps[event.stepKey];
      return {
        ...s,
        // A retry keeps its forEach slot: only a first dispatch takes one.
        forEach: previous === undefined ? bucket(event.stepKey, 'dispatched') : s.forEach,
        steps: setStep(event.stepKey, {
          stepId: event.stepId,
          status: 'scheduled',
          attempt: event.attempt,
          stepExecutionId: event.stepExecutionId,
        }),
        attempts: { ...s.attempts, [event.stepExecutionId]: event.stepKey },
      };
    }
    case 'StepStarted':
      return { ...s, steps: setStep(event.stepKey, { status: 'running', lastHeartbeatAt: event.at }) };
    case 'StepHeartbeat':
      return { ...s, steps: setStep(event.stepKey, { status: 'running', lastHeartbeatAt: event.at }) };
    case 'StepCompleted':
      return {
        ...s,
        forEach: bucket(event.stepKey, 'finished'),
        steps: setStep(event.stepKey, { status: 'completed', output: event.output, completionSeq: s.completions + 1 }),
        attempts: withoutAttempt(event.stepExecutionId ?? event.abandonedStepExecutionId),
        completions: s.completions + 1,
      };
    case 'StepFailed':
      return {
        ...s,
        forEach: event.retryAt === undefined ? bucket(event.stepKey, 'failed') : s.forEach,
        steps: setStep(event.stepKey, {
          status: event.retryAt === undefined ? 'failed' : 'retry_wait',
          error: event.error,
        }),
        attempts: withoutAttempt(event.stepExecutionId),
      };
    case 'StepRetryReady':
      return {
        ...s,
        steps: setStep(event.stepKey, { status: 'retry_ready' }),
        attempts: withoutAttempt(event.abandonedStepExecutionId),
      };
    case 'StepDeadLettered':
      // The attempt stays known: a reprocessed command replies under the same id.
      return { ...s, steps: setStep(event.stepKey, { status: 'dead_lettered', error: event.error }) };
    case 'StepRequeued':
      return { ...s, steps: setStep(event.stepKey, { status: 'scheduled' }) };
    case 'ExecutionRewound': {
      const removed = new Set(event.removedStepKeys);
      const keep = <T>(record: Readonly<Record<string, T>>, key: (value: T, k: string) => string | undefined) =>
        Object.fromEntries(Object.entries(record).filter(([k, v]) => !removed.has(key(v, k) ?? '')));
      const { output: _output, error: _error, compensation: _compensation, ...rest } = s;
      return {
        ...rest,
        status: s.status === 'paused' ? 'paused' : 'running',
        steps: keep(s.steps, (_, k) => k),
        attempts: keep(s.attempts, (stepKey) => stepKey),
        forEach: keep(s.forEach, (_, k) => k),
        timers: keep(s.timers, (purpose) => purpose.stepKey),
      };
    }
    case 'StepSkipped':
      return { ...s, forEach: bucket(event.stepKey, 'skipped'), steps: setStep(event.stepKey, { status: 'skipped' }) };
    case 'StepOpened': {
      const steps = setStep(event.stepKey, {
        stepId: event.stepId,
        status: 'open',
        ...(event.childExecutionId === undefined ? {} : { childExecutionId: event.childExecutionId }),
      });
      if (event.kind !== 'forEach') return { ...s, steps };
      const entry = indexPlan(plan).get(event.stepId)?.step;
      const body = entry?.type === 'forEach' ? entry.steps : [];
      const count = event.itemCount ?? 0;
      const fe: ForEachState = {
        count,
        entered: 0,
        ready: Object.fromEntries(body.map((b) => [b.id, []])),
        inFlight: Object.fromEntries(body.map((b) => [b.id, 0])),
        done: 0,
      };
      return { ...s, steps, forEach: { ...s.forEach, [event.stepKey]: fe } };
    }
    case 'TimerScheduled':
      return { ...s, timers: { ...s.timers, [event.timerId]: { ...event.purpose, fireAt: event.fireAt } } };
    case 'TimerCleared': {
      const { [event.timerId]: _gone, ...timers } = s.timers;
      return { ...s, timers };
    }
    case 'SignalReceived':
      return { ...s, signals: { ...s.signals, [event.name]: [...(s.signals[event.name] ?? []), event.payload] } };
    case 'SignalConsumed':
      return { ...s, signals: { ...s.signals, [event.name]: (s.signals[event.name] ?? []).slice(1) } };
    case 'ChildExecutionRequested':
      return s;
    case 'CompensationStarted':
      return { ...s, status: 'compensating', compensation: { reason: event.reason, queue: event.stepKeys } };
    case 'ExecutionPaused':
      return { ...s, status: 'paused' };
    case 'ExecutionResumed':
      return { ...s, status: 'running' };
    case 'ExecutionCompleted':
      return { ...s, status: 'completed', output: event.output, timers: {} };
    case 'ExecutionFailed':
      return { ...s, status: 'failed', error: event.error, timers: {} };
    case 'ExecutionCancelled':
      return { ...s, status: 'cancelled', timers: {} };
  }
}

/**
 * The state after an execution's events, oldest first: all of them, or those after a
 * snapshot (`from`, the state after the events before them).
 */
export function replay(
  events: readonly EngineEvent[],
  plan: RecipePlan,
  from?: ExecutionState,
): ExecutionState | undefined {
  let state = from;
  for (const event of events) state = evolve(state, event, plan);
  return state;
}
