// Drives one execution through decide without a database, for the engine's unit tests.
import assert from 'node:assert/strict';
import { decide } from '../../src/engine/decide.js';
import { type ItemSource, memoryItemSource } from '../../src/engine/item-source.js';
import type { EngineEvent } from '../../src/engine/events.js';
import { replay } from '../../src/engine/evolve.js';
import { decisionStepRows, stepRowsOf } from '../../src/engine/projection.js';
import type { ExecutionState } from '../../src/engine/state.js';
import type { Trigger } from '../../src/engine/triggers.js';
import type { RecipePlan, RetryPolicy, Step, TaskStep } from '../../src/recipe/plan.js';

export const RETRY: RetryPolicy = {
  maxAttempts: 3,
  initialIntervalMs: 1000,
  backoffCoefficient: 2,
  maxIntervalMs: 60_000,
  jitter: 0.2,
  nonRetryableErrorCodes: ['card_declined'],
};

export function task(id: string, capability: string, extra: Partial<TaskStep> = {}): TaskStep {
  return { id, type: 'task', capability, output: id, retry: RETRY, timeouts: {}, ...extra };
}

export function plan(steps: Step[], output?: string): RecipePlan {
  return { name: 'test', steps, ...(output === undefined ? {} : { output }) };
}

export const T0 = Date.parse('2026-01-01T00:00:00.000Z');

/** Drives one execution through decide, keeping every event for replay checks. */
export class Run {
  state: ExecutionState | undefined;
  readonly log: EngineEvent[] = [];
  /** forEach items as the control plane stores them apart. */
  readonly items = new Map<string, readonly unknown[]>();
  /** Finished item steps as the step rows keep them (output, null when skipped). */
  readonly finished = new Map<string, unknown>();
  /** Items read from the item source (as the control plane reads sous.foreach_item). */
  itemReads = 0;
  #ids = 0;
  #clock = T0;
  constructor(readonly plan: RecipePlan) {}

  /** The state, which must exist by now. */
  get s(): ExecutionState {
    assert.ok(this.state, 'the execution has started');
    return this.state;
  }

  at(ms: number): this {
    this.#clock = T0 + ms;
    return this;
  }

  #itemSource(): ItemSource {
    const source = memoryItemSource(this.items, this.finished);
    return {
      ...source,
      get: (forEachKey, index) => {
        this.itemReads++;
        return source.get(forEachKey, index);
      },
    };
  }

  async send(trigger: Trigger): Promise<EngineEvent[]> {
    // A decision never changes the state it is given: frozen, a write would throw.
    const before = this.state === undefined ? undefined : deepFreeze(this.state);
    const decision = await decide(before, trigger, {
      plan: this.plan,
      now: new Date(this.#clock),
      newId: () => `00000000-0000-4000-8000-${String(++this.#ids).padStart(12, '0')}`,
      random: () => 0.5,
      items: this.#itemSource(),
    });
    if (decision.state !== undefined) {
      // The rows a decision writes, read off its result, are the rows its events fold to.
      const id = decision.state.executionId;
      assert.deepEqual(
        decisionStepRows(id, decision.state, decision.retired ?? new Map(), decision.events, this.plan),
        stepRowsOf(id, before, decision.events, this.plan),
      );
    }
    for (const opened of decision.items) this.items.set(opened.forEachKey, opened.items);
    for (const e of decision.events) {
      if (e.type === 'ExecutionRewound') for (const k of e.removedStepKeys) this.finished.delete(k);
      if (!('stepKey' in e) || !e.stepKey.includes('[')) continue;
      if (e.type === 'StepCompleted') this.finished.set(e.stepKey, e.output);
      if (e.type === 'StepSkipped') this.finished.set(e.stepKey, null);
    }
    this.state = decision.state;
    this.log.push(...decision.events);
    return [...decision.events];
  }

  start(input: unknown = {}, pinned?: Readonly<Record<string, number>>): Promise<EngineEvent[]> {
    return this.send({
      kind: 'start',
      executionId: 'e0000000-0000-4000-8000-000000000000',
      recipe: 'test',
      version: 1,
      input,
      ...(pinned === undefined ? {} : { subRecipeVersions: pinned }),
    });
  }

  attempt(stepKey: string): string {
    const id = this.state?.steps[stepKey]?.stepExecutionId;
    assert.ok(id, `step ${stepKey} has an attempt in flight`);
    return id;
  }

  complete(stepKey: string, output: unknown = null): Promise<EngineEvent[]> {
    return this.send({ kind: 'step.completed', stepExecutionId: this.attempt(stepKey), output });
  }

  fail(stepKey: string, code: string, retryable: boolean): Promise<EngineEvent[]> {
    return this.send({
      kind: 'step.failed',
      stepExecutionId: this.attempt(stepKey),
      error: { code, message: `${code}!`, retryable },
    });
  }

  fire(kind: string, stepKey?: string): Promise<EngineEvent[]> {
    const timer = Object.entries(this.state?.timers ?? {}).find(
      ([, p]) => p.kind === kind && (stepKey === undefined || ('stepKey' in p && p.stepKey === stepKey)),
    );
    assert.ok(timer, `a ${kind} timer is set`);
    return this.send({ kind: 'timer', timerId: timer[0] });
  }

  /** The replayed log gives the state the decisions returned. */
  assertReplays(): void {
    assert.deepEqual(replay(this.log, this.plan), this.state);
  }
}

/** Freezes a value and everything in it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  for (const v of Object.values(value)) deepFreeze(v);
  return Object.freeze(value);
}

export const scheduled = (events: EngineEvent[]) =>
  events.flatMap((e) => (e.type === 'StepScheduled' ? [`${e.stepKey}:${e.capability}#${e.attempt}`] : []));
export const types = (events: EngineEvent[]) => events.map((e) => e.type);
export const inputOf = (events: EngineEvent[], stepKey: string) =>
  events.find(
    (e): e is Extract<EngineEvent, { type: 'StepScheduled' }> => e.type === 'StepScheduled' && e.stepKey === stepKey,
  )?.input;
