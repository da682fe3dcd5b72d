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
  const draft = new StateDraft(state, plan);
  const retired = draft.apply(event);
  const next = draft.snapshot();
  if (next === undefined) throw new Error(`event ${event.type} before ExecutionStarted`);
  return { state: next, retired };
}

/**
 * The state after an execution's events, oldest first: all of them, or those after a
 * snapshot (`from`, the state after the events before them; not changed).
 */
export function replay(
  events: readonly EngineEvent[],
  plan: RecipePlan,
  from?: ExecutionState,
): ExecutionState | undefined {
  const draft = new StateDraft(from, plan);
  for (const event of events) draft.apply(event);
  return draft.snapshot();
}

type Writable<T> = { -readonly [K in keyof T]: T[K] };
/** The records of a state that grow with the execution: copied once per draft, then written in place. */
type RecordName = 'steps' | 'attempts' | 'forEach' | 'timers' | 'signals';
type DraftState = Writable<Omit<ExecutionState, RecordName>> & {
  [K in RecordName]: Writable<ExecutionState[K]>;
};

const RECORDS: readonly RecordName[] = ['steps', 'attempts', 'forEach', 'timers', 'signals'];

/**
 * Events folded into a state in turn, copying what they change once rather than once per
 * event: the first write to a record (steps, attempts, ...) copies it, later writes change
 * the copy in place. A forEach with n items in flight then costs O(n) per decision (or per
 * replay) instead of O(n) per event. The state given is never changed; `snapshot` hands
 * the state out as a value (later events copy again before they write), and step and
 * forEach entries are replaced, never changed, so references to them stay valid.
 *
 * Records are copied key by key (for...in), not spread: a spread of a record that lost
 * keys to `delete` keeps the old one's dictionary capacity, which then only grows as items
 * come and go (a copy of 100 keys costing like one of thousands).
 */
export class StateDraft {
  #base: ExecutionState | undefined;
  /** The top level, copied on the first event since the last snapshot. */
  #state: DraftState | undefined;
  /** Records this draft copied since the last snapshot (its own to write). */
  readonly #owned = new Set<RecordName>();

  /**
   * @param owned the caller gives `base` up: events change it in place, nothing is copied
   *   (it must not be read as the old state afterwards). @default false
   */
  constructor(
    base: ExecutionState | undefined,
    private readonly plan: RecipePlan,
    owned = false,
  ) {
    this.#base = base;
    if (owned && base !== undefined) {
      this.#state = base;
      for (const name of RECORDS) this.#owned.add(name);
    }
  }

  /** The state as folded so far: read it, never change it (the next event may). */
  get state(): ExecutionState | undefined {
    return this.#state ?? this.#base;
  }

  /** The state as folded so far, as a value no later event changes. */
  snapshot(): ExecutionState | undefined {
    if (this.#state !== undefined) {
      this.#base = this.#state;
      this.#state = undefined;
      this.#owned.clear();
    }
    return this.#base;
  }

  /** Folds one event in; returns the step states it retired (see evolveRetiring). */
  apply(event: EngineEvent): Record<string, StepState> {
    this.#fold(event);
    const keys = finishedItemKeys(event, this.plan);
    const retired: Record<string, StepState> = {};
    if (keys.length === 0) return retired;
    const current = this.#top().steps;
    if (!keys.some((key) => key in current)) return retired;
    const steps = this.#record('steps');
    for (const key of keys) {
      const st = steps[key];
      if (st === undefined) continue;
      retired[key] = st;
      Reflect.deleteProperty(steps, key);
    }
    return retired;
  }

  #top(): DraftState {
    if (this.#state === undefined) {
      if (this.#base === undefined) throw new Error('no execution state');
      this.#state = { ...this.#base };
    }
    return this.#state;
  }

  #record<K extends RecordName>(name: K): DraftState[K] {
    const s = this.#top();
    if (!this.#owned.has(name)) {
      s[name] = copyRecord(s[name]);
      this.#owned.add(name);
    }
    return s[name];
  }

  /** Replaces a record with a new object of the draft's own. */
  #replace<K extends RecordName>(name: K, value: DraftState[K]): void {
    this.#top()[name] = value;
    this.#owned.add(name);
  }

  #fold(event: EngineEvent): void {
    const plan = this.plan;
    if (event.type === 'ExecutionStarted') {
      this.#state = {
        executionId: event.executionId,
        recipe: event.recipe,
        version: event.version,
        status: 'running',
        input: event.input,
        ...(event.idempotencyKey === undefined ? {} : { idempotencyKey: event.idempotencyKey }),
        ...(event.parent === undefined ? {} : { parent: event.parent }),
        ...(event.subRecipeVersions === undefined ? {} : { subRecipeVersions: event.subRecipeVersions }),
        ...(event.deadlineAt === undefined ? {} : { deadlineAt: event.deadlineAt }),
        steps: {},
        attempts: {},
        forEach: {},
        timers: {},
        signals: {},
        completions: 0,
        createdAt: event.at,
        updatedAt: event.at,
      };
      for (const name of RECORDS) this.#owned.add(name);
      return;
    }
    if (this.state === undefined) throw new Error(`event ${event.type} before ExecutionStarted`);
    const s = this.#top();
    s.updatedAt = event.at;

    const setStep = (key: string, change: Partial<StepState>): void => {
      const previous: StepState = s.steps[key] ?? {
        stepId: parseStepKey(key).stepId,
        status: 'scheduled',
        attempt: 0,
        createdAt: event.at,
        updatedAt: event.at,
      };
      const next: StepState = { ...previous, ...change, updatedAt: event.at };
      const finished =
        next.status === 'completed' ||
        next.status === 'skipped' ||
        next.status === 'failed' ||
        next.status === 'cancelled';
      const steps = this.#record('steps');
      if (finished) {
        steps[key] = { ...next, finishedAt: event.at };
      } else {
        const { finishedAt: _unset, ...open } = next;
        steps[key] = open;
      }
    };
    const withoutAttempt = (stepExecutionId: string | undefined): void => {
      if (stepExecutionId === undefined || !(stepExecutionId in s.attempts)) return;
      Reflect.deleteProperty(this.#record('attempts'), stepExecutionId);
    };
    /** Moves a forEach item along its buckets when one of its body steps changes. */
    const bucket = (key: string, change: 'dispatched' | 'finished' | 'skipped' | 'failed' | 'retrying'): void => {
      const { stepId, itemIndex, compensation } = parseStepKey(key);
      if (itemIndex === undefined || compensation) return;
      const place = indexPlan(plan).get(stepId)?.forEach;
      const fe = place === undefined ? undefined : s.forEach[place.key];
      if (place === undefined || fe === undefined) return;
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
      this.#record('forEach')[place.key] = next;
    };

    switch (event.type) {
      case 'StepScheduled': {
        // A retry keeps its forEach slot: only a first dispatch takes one.
        if (s.steps[event.stepKey] === undefined) bucket(event.stepKey, 'dispatched');
        setStep(event.stepKey, {
          stepId: event.stepId,
          status: 'scheduled',
          attempt: event.attempt,
          stepExecutionId: event.stepExecutionId,
        });
        this.#record('attempts')[event.stepExecutionId] = event.stepKey;
        return;
      }
      case 'StepStarted':
      case 'StepHeartbeat':
        setStep(event.stepKey, { status: 'running', lastHeartbeatAt: event.at });
        return;
      case 'StepCompleted':
        bucket(event.stepKey, 'finished');
        setStep(event.stepKey, { status: 'completed', output: event.output, completionSeq: s.completions + 1 });
        withoutAttempt(event.stepExecutionId ?? event.abandonedStepExecutionId);
        s.completions += 1;
        return;
      case 'StepFailed':
        if (event.retryAt === undefined) bucket(event.stepKey, 'failed');
        setStep(event.stepKey, { status: event.retryAt === undefined ? 'failed' : 'retry_wait', error: event.error });
        withoutAttempt(event.stepExecutionId);
        return;
      case 'StepCancelled':
        // Its forEach (cancelled too) keeps its buckets: nothing reads them any more.
        setStep(event.stepKey, { status: 'cancelled', error: event.reason });
        withoutAttempt(event.stepExecutionId);
        return;
      case 'StepRetryReady':
        setStep(event.stepKey, { status: 'retry_ready' });
        withoutAttempt(event.abandonedStepExecutionId);
        return;
      case 'StepDeadLettered':
        // The attempt stays known: a reprocessed command replies under the same id.
        setStep(event.stepKey, { status: 'dead_lettered', error: event.error });
        return;
      case 'StepRequeued':
        setStep(event.stepKey, { status: 'scheduled' });
        return;
      case 'ExecutionRewound': {
        const removed = new Set(event.removedStepKeys);
        const keep = <T>(record: Readonly<Record<string, T>>, key: (value: T, k: string) => string | undefined) =>
          Object.fromEntries(Object.entries(record).filter(([k, v]) => !removed.has(key(v, k) ?? '')));
        delete s.output;
        delete s.error;
        delete s.compensation;
        delete s.finishing;
        delete s.handlerFailures;
        s.status = s.status === 'paused' ? 'paused' : 'running';
        this.#replace(
          'steps',
          keep(s.steps, (_, k) => k),
        );
        this.#replace(
          'attempts',
          keep(s.attempts, (stepKey) => stepKey),
        );
        this.#replace(
          'forEach',
          keep(s.forEach, (_, k) => k),
        );
        this.#replace(
          'timers',
          keep(s.timers, (purpose) => ('stepKey' in purpose ? purpose.stepKey : undefined)),
        );
        return;
      }
      case 'StepSkipped':
        bucket(event.stepKey, 'skipped');
        setStep(event.stepKey, { status: 'skipped' });
        return;
      case 'StepOpened': {
        setStep(event.stepKey, {
          stepId: event.stepId,
          status: 'open',
          ...(event.childExecutionId === undefined ? {} : { childExecutionId: event.childExecutionId }),
        });
        if (event.kind !== 'forEach') return;
        const entry = indexPlan(plan).get(event.stepId)?.step;
        const body = entry?.type === 'forEach' ? entry.steps : [];
        const count = event.itemCount ?? 0;
        this.#record('forEach')[event.stepKey] = {
          count,
          entered: 0,
          ready: Object.fromEntries(body.map((b) => [b.id, []])),
          inFlight: Object.fromEntries(body.map((b) => [b.id, 0])),
          done: 0,
        };
        return;
      }
      case 'TimerScheduled':
        this.#record('timers')[event.timerId] = { ...event.purpose, fireAt: event.fireAt };
        return;
      case 'TimerCleared':
        if (event.timerId in s.timers) Reflect.deleteProperty(this.#record('timers'), event.timerId);
        return;
      case 'SignalReceived':
        this.#record('signals')[event.name] = [...(s.signals[event.name] ?? []), event.payload];
        return;
      case 'SignalConsumed':
        this.#record('signals')[event.name] = (s.signals[event.name] ?? []).slice(1);
        return;
      case 'ChildExecutionRequested':
        return;
      case 'CompensationStarted':
        s.status = 'compensating';
        s.compensation = {
          reason: event.reason,
          queue: event.stepKeys,
          ...(event.timedOut === true ? { timedOut: true } : {}),
        };
        return;
      case 'FinishingStarted':
        // A completed execution runs its finally steps as it ran its steps; a failed one
        // stays `compensating` (winding down) until its handlers ran.
        s.status = event.finishing.outcome === 'completed' ? 'running' : 'compensating';
        s.finishing = event.finishing;
        return;
      case 'ExecutionPaused':
        s.status = 'paused';
        return;
      case 'ExecutionResumed':
        s.status = 'running';
        return;
      case 'ExecutionCompleted':
        s.status = 'completed';
        s.output = event.output;
        delete s.finishing;
        if (event.handlerFailures !== undefined) s.handlerFailures = event.handlerFailures;
        this.#replace('timers', {});
        return;
      case 'ExecutionFailed':
        s.status = event.timedOut === true ? 'timed_out' : 'failed';
        s.error = event.error;
        delete s.finishing;
        if (event.handlerFailures !== undefined) s.handlerFailures = event.handlerFailures;
        this.#replace('timers', {});
        return;
      case 'ExecutionCancelled':
        s.status = 'cancelled';
        this.#replace('timers', {});
        return;
    }
  }
}

/** A new object with the record's own keys and values, in its order. */
function copyRecord<T extends object>(record: T): T {
  const copy = {} as Record<string, unknown>;
  for (const key in record) copy[key] = record[key];
  return copy as T;
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
