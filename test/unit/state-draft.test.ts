// Decisions chained on a state they own (a batch of replies to one execution) change it in
// place: they must give what copying decisions give, and the rows their events fold to.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decide, type Decision } from '../../src/engine/decide.js';
import type { EngineEvent } from '../../src/engine/events.js';
import { replay, StateDraft } from '../../src/engine/evolve.js';
import { memoryItemSource } from '../../src/engine/item-source.js';
import { decisionStepRows, stepRowsOf } from '../../src/engine/projection.js';
import type { ExecutionState } from '../../src/engine/state.js';
import type { Trigger } from '../../src/engine/triggers.js';
import type { RecipePlan, RetryPolicy, TaskStep } from '../../src/recipe/plan.js';

const RETRY: RetryPolicy = {
  maxAttempts: 2,
  initialIntervalMs: 10,
  backoffCoefficient: 2,
  maxIntervalMs: 100,
  jitter: 0,
  nonRetryableErrorCodes: [],
};
const task = (id: string): TaskStep => ({
  id,
  type: 'task',
  capability: `t.${id}`,
  output: id,
  retry: RETRY,
  timeouts: {},
});

/** A forEach of two body steps (items move from one bucket to the next) and a step after it. */
const PLAN: RecipePlan = {
  name: 'draft',
  steps: [
    { id: 'each', type: 'forEach', output: 'each', items: '[1..12]', concurrency: 3, steps: [task('a'), task('b')] },
    task('after'),
  ],
};
const EXECUTION = 'e0000000-0000-4000-8000-000000000000';

/** Drives the execution to its end, completing (or once failing) the oldest attempt each time. */
async function drive(owned: boolean): Promise<{ state: ExecutionState | undefined; log: EngineEvent[] }> {
  let ids = 0;
  const items = new Map<string, readonly unknown[]>();
  const finished = new Map<string, unknown>();
  const log: EngineEvent[] = [];
  let state: ExecutionState | undefined;
  let mine = false;
  const send = async (trigger: Trigger): Promise<Decision> => {
    const before = state;
    // A copying decision never writes its input: frozen, a write would throw.
    if (!owned && before !== undefined) Object.freeze(before.steps);
    const decision = await decide(before, trigger, {
      plan: PLAN,
      now: new Date(Date.parse('2026-01-01T00:00:00Z') + ids),
      newId: () => `00000000-0000-4000-8000-${String(++ids).padStart(12, '0')}`,
      random: () => 0.5,
      items: memoryItemSource(items, finished),
      stateOwned: owned && mine,
    });
    for (const o of decision.items) items.set(o.forEachKey, o.items);
    for (const e of decision.events)
      if (e.type === 'StepCompleted' && e.stepKey.startsWith('b[')) finished.set(e.stepKey, e.output);
    if (decision.state !== undefined && decision.events.length > 0) {
      const rows = decisionStepRows(EXECUTION, decision.state, decision.retired ?? new Map(), decision.events, PLAN);
      // The rows a decision writes are those its events fold to from the state before it
      // (replayed from the log here: an owned state before it is gone).
      assert.deepEqual(rows, stepRowsOf(EXECUTION, replay(log, PLAN), decision.events, PLAN));
      log.push(...decision.events);
      state = decision.state;
      mine = true;
    }
    return decision;
  };
  await send({ kind: 'start', executionId: EXECUTION, recipe: 'draft', version: 1, input: {} });
  let failedOnce = false;
  for (let guard = 0; guard < 200 && state?.status === 'running'; guard++) {
    const retry = Object.entries(state.timers).find(([, p]) => p.kind === 'retry');
    if (retry !== undefined) {
      await send({ kind: 'timer', timerId: retry[0] });
      continue;
    }
    const [attempt, key] = Object.entries(state.attempts)[0] ?? [];
    if (attempt === undefined || key === undefined) break;
    if (!failedOnce && key === 'b[4]') {
      failedOnce = true;
      await send({
        kind: 'step.failed',
        stepExecutionId: attempt,
        error: { code: 'x', message: 'x', retryable: true },
      });
    } else {
      await send({ kind: 'step.completed', stepExecutionId: attempt, output: { key } });
    }
  }
  return { state, log };
}

describe('decisions on an owned state', () => {
  it('give the events, state and rows that copying decisions give', async () => {
    const copying = await drive(false);
    const owning = await drive(true);
    assert.equal(copying.state?.status, 'completed');
    assert.deepEqual(owning.log, copying.log);
    assert.deepEqual(owning.state, copying.state);
    assert.deepEqual(replay(owning.log, PLAN), owning.state);
  });

  it('a draft copies what it changes, once, and never the state it was given', () => {
    const started = replay(
      [
        {
          type: 'ExecutionStarted',
          at: '2026-01-01T00:00:00Z',
          executionId: EXECUTION,
          recipe: 'draft',
          version: 1,
          input: {},
        },
      ],
      PLAN,
    );
    assert.ok(started);
    const base = Object.freeze({ ...started, steps: Object.freeze({ x: Object.freeze({ ...stepOpen('x') }) }) });
    const draft = new StateDraft(base, PLAN);
    draft.apply({ type: 'StepOpened', at: '2026-01-01T00:00:01Z', stepKey: 'y', stepId: 'y', kind: 'sleep' });
    const steps = draft.state?.steps;
    draft.apply({ type: 'StepCompleted', at: '2026-01-01T00:00:02Z', stepKey: 'y', output: null });
    assert.equal(draft.state?.steps, steps, 'the second change writes the copy the first made');
    const first = draft.snapshot();
    draft.apply({ type: 'StepCompleted', at: '2026-01-01T00:00:03Z', stepKey: 'x', output: 1 });
    assert.deepEqual(Object.keys(base.steps), ['x']);
    assert.equal(first?.steps.x?.status, 'open', 'a snapshot stays as it was');
    assert.equal(draft.state?.steps.x?.status, 'completed');
  });
});

function stepOpen(stepId: string) {
  return {
    stepId,
    status: 'open' as const,
    attempt: 0,
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
  };
}
