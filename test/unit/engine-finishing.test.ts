// onFailure / finally steps, the execution deadline and the compensation plan, on decide alone (no database).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { childrenToCancel } from '../../src/engine/cascade.js';
import { compensationPlan } from '../../src/engine/compensation.js';
import { memoryItemSource } from '../../src/engine/item-source.js';
import { attemptRowsOf, stepRowsOf } from '../../src/engine/projection.js';
import { compileRecipe, parseRecipeYaml, recipe } from '../../src/recipe/index.js';
import type { RecipePlan, Step, TaskStep } from '../../src/recipe/plan.js';
import { Run, inputOf, plan, scheduled, task, types } from '../helpers/engine-run.js';

const ORDER = 'e0000000-0000-4000-8000-000000000000';

function saga(extra: Partial<RecipePlan> = {}, steps?: Step[]): RecipePlan {
  return {
    ...plan(
      steps ?? [
        task('reserve', 'inventory.reserve', {
          compensate: { capability: 'inventory.release', input: { fields: { id: 'outputs.reserve.id' } } },
        }),
        task('charge', 'payments.charge', { compensate: { capability: 'payments.refund' } }),
        task('ship', 'shipping.ship'),
      ],
    ),
    ...extra,
  };
}

const notify = (extra: Partial<TaskStep> = {}): TaskStep =>
  task('notify', 'customers.notify', {
    input: { fields: { code: 'failure.code', outcome: 'outcome', order: 'execution.id' } },
    ...extra,
  });

describe('decide: onFailure and finally steps', () => {
  it('runs onFailure after the compensations, with the failure in its scope, and ends failed', async () => {
    const run = new Run(saga({ onFailure: [notify()] }));
    await run.start();
    await run.complete('reserve', { id: 'r1' });
    await run.fail('charge', 'card_declined', false);
    assert.deepEqual(scheduled(run.log), [
      'reserve:inventory.reserve#1',
      'charge:payments.charge#1',
      'reserve~compensate:inventory.release#1',
    ]);
    const after = await run.complete('reserve~compensate');
    assert.deepEqual(types(after), ['StepCompleted', 'FinishingStarted', 'StepScheduled']);
    assert.deepEqual(inputOf(after, 'notify'), { code: 'card_declined', outcome: 'failed', order: ORDER });
    assert.equal(run.s.status, 'compensating', 'winding down until its handlers ran');
    await run.complete('notify', { sent: true });
    assert.equal(run.s.status, 'failed');
    assert.equal(run.s.error?.code, 'card_declined');
    const last = run.log.at(-1);
    assert.ok(last?.type === 'ExecutionFailed' && last.compensated && last.handlerFailures === undefined);
    run.assertReplays();
  });

  it('records a failing handler without hiding the failure, and runs the next one', async () => {
    const run = new Run(
      saga({
        onFailure: [notify({ retry: { ...task('x', 'x.x').retry, maxAttempts: 1 } })],
        finally: [task('audit', 'audit.write', { input: { expression: '{"failure": failure.code}' } })],
      }),
    );
    await run.start();
    await run.fail('reserve', 'out_of_stock', false); // nothing to compensate: handlers at once
    assert.deepEqual(scheduled(run.log).slice(-1), ['notify:customers.notify#1']);
    const next = await run.fail('notify', 'smtp_down', true);
    assert.deepEqual(scheduled(next), ['audit:audit.write#1'], 'one attempt allowed: the next handler runs');
    assert.deepEqual(inputOf(next, 'audit'), { failure: 'out_of_stock' });
    await run.complete('audit');
    assert.equal(run.s.status, 'failed');
    assert.equal(run.s.error?.code, 'out_of_stock', 'the original failure');
    assert.deepEqual(
      run.s.handlerFailures?.map((f) => [f.stepKey, f.error.code]),
      [['notify', 'smtp_down']],
    );
    assert.equal(stepRowsOf(ORDER, undefined, run.log, run.plan).get('notify')?.status, 'failed');
    run.assertReplays();
  });

  it('runs finally (not onFailure) after a completed execution, with failure null; retries it', async () => {
    const run = new Run(
      saga(
        {
          onFailure: [notify()],
          finally: [task('audit', 'audit.write', { input: { fields: { failure: 'failure', out: 'outcome' } } })],
        },
        [task('a', 'x.a')],
      ),
    );
    await run.start();
    const done = await run.complete('a', 1);
    assert.deepEqual(scheduled(done), ['audit:audit.write#1']);
    assert.deepEqual(inputOf(done, 'audit'), { failure: null, out: 'completed' });
    assert.equal(run.s.status, 'running');
    await run.fail('audit', 'busy', true);
    assert.deepEqual(scheduled(await run.fire('retry', 'audit')), ['audit:audit.write#2']);
    await run.complete('audit');
    assert.equal(run.s.status, 'completed');
    assert.deepEqual(run.s.output, { a: 1 }, 'the output is taken before the finally steps run');
    run.assertReplays();
  });

  it('skips a handler whose when is false; a rerun forgets the handlers so they run again', async () => {
    const run = new Run(saga({ onFailure: [notify({ when: "failure.code = 'nope'" })] }, [task('a', 'x.a')]));
    await run.start();
    await run.fail('a', 'boom', false);
    assert.equal(run.s.status, 'failed');
    assert.equal(run.s.steps.notify?.status, 'skipped');
    await run.send({ kind: 'rerunFromStep', stepId: 'a' });
    assert.equal(run.s.steps.notify, undefined);
    assert.equal(run.s.finishing, undefined);
    await run.complete('a');
    assert.equal(run.s.status, 'completed');
    run.assertReplays();
  });
});

describe('decide: execution deadline', () => {
  it('cancels steps in flight, compensates and ends timed_out with its code', async () => {
    const run = new Run(saga({ deadlineMs: 60_000, onFailure: [notify()] }));
    const started = await run.start();
    const timer = started.find((e) => e.type === 'TimerScheduled');
    assert.ok(timer?.type === 'TimerScheduled' && timer.purpose.kind === 'deadline');
    assert.equal(timer.fireAt, '2026-01-01T00:01:00.000Z');
    await run.complete('reserve', { id: 'r1' });
    const charging = run.attempt('charge');
    const fired = await run.at(60_000).fire('deadline');
    assert.deepEqual(types(fired).slice(0, 3), ['TimerCleared', 'StepCancelled', 'CompensationStarted']);
    assert.deepEqual(scheduled(fired), ['reserve~compensate:inventory.release#1']);
    assert.equal(run.s.steps.charge?.status, 'cancelled');
    assert.deepEqual(await run.send({ kind: 'step.completed', stepExecutionId: charging, output: 1 }), []);
    assert.equal(attemptRowsOf(ORDER, run.log).get(charging)?.status, 'cancelled');
    const compensated = await run.complete('reserve~compensate');
    assert.deepEqual(inputOf(compensated, 'notify'), {
      code: 'timeout.execution_deadline',
      outcome: 'timed_out',
      order: ORDER,
    });
    await run.complete('notify');
    assert.equal(run.s.status, 'timed_out');
    assert.equal(run.s.error?.code, 'timeout.execution_deadline');
    run.assertReplays();
  });

  it('takes the start deadline over the recipe one; cancels waits; a finished execution drops its deadline', async () => {
    const run = new Run(
      saga({ deadlineMs: 60_000 }, [{ id: 'w', type: 'waitForSignal', signal: 'go', onTimeout: 'fail', output: 'w' }]),
    );
    const started = await run.send({
      kind: 'start',
      executionId: ORDER,
      recipe: 'test',
      version: 1,
      input: {},
      deadlineMs: 5000,
    });
    assert.equal(run.s.deadlineAt, '2026-01-01T00:00:05.000Z');
    assert.ok(started.some((e) => e.type === 'TimerScheduled' && e.fireAt === '2026-01-01T00:00:05.000Z'));
    await run.at(5000).fire('deadline');
    assert.equal(run.s.steps.w?.status, 'cancelled');
    assert.equal(run.s.status, 'timed_out');

    const quick = new Run(saga({ deadlineMs: 60_000 }, [task('a', 'x.a')]));
    await quick.start();
    const done = await quick.complete('a');
    assert.deepEqual(types(done), ['StepCompleted', 'TimerCleared', 'ExecutionCompleted']);
    quick.assertReplays();
  });

  it('lets an execution already compensating finish as failed', async () => {
    const run = new Run(saga({ deadlineMs: 60_000 }));
    await run.start();
    await run.complete('reserve', { id: 'r1' });
    await run.fail('charge', 'card_declined', false);
    assert.deepEqual(types(await run.at(60_000).fire('deadline')), ['TimerCleared']);
    await run.complete('reserve~compensate');
    assert.equal(run.s.status, 'failed');
  });
});

describe('compensationPlan', () => {
  it('lists the compensations a failure now would run, latest first, with their inputs, changing nothing', async () => {
    const run = new Run(saga());
    await run.start();
    const items = memoryItemSource();
    assert.deepEqual(await compensationPlan(run.s, run.plan, items), []);
    await run.complete('reserve', { id: 'r1' });
    await run.complete('charge', { id: 'c1' });
    const before = structuredClone(run.s);
    const planned = await compensationPlan(run.s, run.plan, items);
    assert.deepEqual(planned, [
      {
        order: 1,
        stepKey: 'charge',
        compensationKey: 'charge~compensate',
        stepId: 'charge',
        capability: 'payments.refund',
        input: {},
        status: 'pending',
      },
      {
        order: 2,
        stepKey: 'reserve',
        compensationKey: 'reserve~compensate',
        stepId: 'reserve',
        capability: 'inventory.release',
        input: { id: 'r1' },
        status: 'pending',
      },
    ]);
    assert.deepEqual(run.s, before);
    // Then failing gives that order and those inputs.
    const failed = await run.fail('ship', 'no_courier', false);
    assert.deepEqual(scheduled(failed), ['charge~compensate:payments.refund#1']);
    assert.deepEqual(
      (await compensationPlan(run.s, run.plan, items)).map((c) => [c.compensationKey, c.status]),
      [
        ['charge~compensate', 'scheduled'],
        ['reserve~compensate', 'pending'],
      ],
    );
    await run.complete('charge~compensate');
    await run.complete('reserve~compensate');
    assert.deepEqual(await compensationPlan(run.s, run.plan, items), [], 'a finished execution runs none');
  });
});

describe('childrenToCancel: a cancel reaches the sub-recipes', () => {
  const parent = (extra: Partial<RecipePlan> = {}) =>
    saga(extra, [
      {
        id: 'split',
        type: 'parallel',
        branches: [
          [{ id: 'childA', type: 'subRecipe', recipe: 'child', output: 'childA' }],
          [{ id: 'childB', type: 'subRecipe', recipe: 'child', output: 'childB' }],
        ],
      },
    ]);

  it('names every child still awaited by a cancelled execution, not one that finished', async () => {
    const run = new Run(parent());
    await run.start();
    const a = run.s.steps.childA?.childExecutionId;
    const b = run.s.steps.childB?.childExecutionId;
    assert.ok(a !== undefined && b !== undefined);
    await run.send({ kind: 'child.finished', childExecutionId: a, status: 'completed', output: 1 });
    assert.deepEqual(childrenToCancel(run.s, run.log), [], 'nothing cancelled yet');
    const cancelled = await run.send({ kind: 'cancel', reason: 'customer' });
    assert.deepEqual(childrenToCancel(run.s, cancelled), [
      { childExecutionId: b, reason: `parent execution ${ORDER} was cancelled` },
    ]);
  });

  it('names the child of a sub-recipe step the deadline cancelled', async () => {
    const run = new Run(parent({ deadlineMs: 1000 }));
    await run.start();
    const fired = await run.at(1000).fire('deadline');
    assert.deepEqual(
      childrenToCancel(run.s, fired).map((c) => [c.childExecutionId, c.reason.endsWith('timeout.execution_deadline')]),
      [
        [run.s.steps.childA?.childExecutionId, true],
        [run.s.steps.childB?.childExecutionId, true],
      ],
    );
    assert.equal(run.s.status, 'timed_out');
  });
});

describe('recipes: onFailure, finally, deadline', () => {
  it('compiles them from YAML and the builder alike, and round-trips the plan', () => {
    const yaml = parseRecipeYaml(`
name: order
deadline: 2h
steps:
  - id: charge
    capability: payments.charge
onFailure:
  - id: notify
    capability: customers.notify
    input: { reason: failure.message }
finally:
  - id: audit
    capability: audit.write
`);
    const built = recipe('order')
      .task('charge', 'payments.charge')
      .onFailure((s) => s.task('notify', 'customers.notify', { input: { reason: 'failure.message' } }))
      .finally((s) => s.task('audit', 'audit.write'))
      .deadline('2h')
      .build();
    assert.deepEqual(yaml, built);
    assert.equal(built.deadlineMs, 7_200_000);
    assert.equal(built.onFailure?.[0]?.capability, 'customers.notify');
    assert.deepEqual(compileRecipe(JSON.parse(JSON.stringify(built))), built);
  });

  it('refuses handlers that are not tasks or have a compensation, ids reused, and a bad deadline', () => {
    assert.throws(
      () =>
        compileRecipe({
          name: 'bad',
          deadline: 'soon',
          steps: [{ id: 'a', capability: 'x.a' }],
          onFailure: [{ id: 'a', capability: 'x.b', compensate: { capability: 'x.c' } }],
          finally: [{ id: 'z', sleep: '1s' }],
        }),
      /deadline/,
    );
    assert.throws(
      () =>
        compileRecipe({
          name: 'bad',
          steps: [{ id: 'a', capability: 'x.a', input: 'outputs.n' }],
          onFailure: [{ id: 'a', capability: 'x.b', compensate: { capability: 'x.c' } }],
          finally: [
            { id: 'z', sleep: '1s' },
            { id: 'n', capability: 'x.n' },
          ],
        }),
      (error: Error & { issues?: { path: string; message: string }[] }) => {
        const paths = (error.issues ?? []).map((i) => i.path);
        assert.ok(paths.includes('onFailure[0].compensate'), paths.join());
        assert.ok(paths.includes('onFailure[0].id'), paths.join());
        assert.ok(paths.includes('finally[0]'), paths.join());
        assert.ok(paths.includes('steps[0].input'), paths.join());
        return true;
      },
    );
  });
});
