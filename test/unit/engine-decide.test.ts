// The decision function over every construct, without a database: state + trigger → events.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EngineEvent } from '../../src/engine/events.js';
import { attemptRowsOf, stepRowsOf } from '../../src/engine/projection.js';
import type { Step } from '../../src/recipe/plan.js';
import { Run, T0, inputOf, plan, scheduled, task, types } from '../helpers/engine-run.js';

describe('decide: sequential steps', () => {
  it('dispatches one step at a time, mapping inputs from input and earlier outputs', async () => {
    const run = new Run(
      plan(
        [
          task('reserve', 'inventory.reserve', { input: { fields: { sku: 'input.sku' } } }),
          task('charge', 'payments.charge', {
            input: { expression: '{ "amount": input.qty * outputs.reserve.price }' },
          }),
        ],
        '{ "paid": outputs.charge.id }',
      ),
    );
    const started = await run.start({ sku: 'A-1', qty: 3 });
    assert.deepEqual(scheduled(started), ['reserve:inventory.reserve#1']);
    assert.deepEqual(inputOf(started, 'reserve'), { sku: 'A-1' });
    const afterReserve = await run.complete('reserve', { price: 5 });
    assert.deepEqual(scheduled(afterReserve), ['charge:payments.charge#1']);
    assert.deepEqual(inputOf(afterReserve, 'charge'), { amount: 15 });
    const done = await run.complete('charge', { id: 'ch_1' });
    assert.deepEqual(types(done), ['StepCompleted', 'ExecutionCompleted']);
    assert.equal(run.s.status, 'completed');
    assert.deepEqual(run.s.output, { paid: 'ch_1' });
    run.assertReplays();
  });

  it('ignores duplicate and stale replies', async () => {
    const run = new Run(plan([task('a', 'x.a'), task('b', 'x.b')]));
    await run.start();
    const first = run.attempt('a');
    await run.complete('a');
    assert.deepEqual(await run.send({ kind: 'step.completed', stepExecutionId: first, output: 'again' }), []);
    assert.deepEqual(
      await run.send({
        kind: 'step.failed',
        stepExecutionId: first,
        error: { code: 'x', message: 'x', retryable: true },
      }),
      [],
    );
    assert.deepEqual(
      await run.send({
        kind: 'start',
        executionId: 'e0000000-0000-4000-8000-000000000000',
        recipe: 'test',
        version: 1,
        input: {},
      }),
      [],
    );
    assert.equal(run.s.steps.b?.status, 'scheduled');
  });

  it('skips a step whose when is false and runs one whose when is true', async () => {
    const run = new Run(plan([task('a', 'x.a', { when: 'input.big' }), task('b', 'x.b', { when: '$not(input.big)' })]));
    const events = await run.start({ big: false });
    assert.deepEqual(types(events).slice(0, 2), ['ExecutionStarted', 'StepSkipped']);
    assert.deepEqual(scheduled(events), ['b:x.b#1']);
    await run.complete('b');
    assert.equal(run.s.status, 'completed');
    assert.equal(run.s.steps.a?.status, 'skipped');
  });

  it('fails the execution when an input expression fails', async () => {
    const run = new Run(plan([task('a', 'x.a', { input: { expression: '$error("no way")' } })]));
    await run.start();
    assert.equal(run.s.status, 'failed');
    assert.equal(run.s.error?.code, 'expression_failed');
    assert.match(run.s.error.message, /no way/);
  });

  it('fails a step whose input expression never ends, naming the step and the expression', async () => {
    const loop = '( $loop := function($n) { $n > 0 ? $loop($n - 1) : 0 }; { "n": $loop(1e12) } )';
    const run = new Run(plan([task('a', 'x.a', { input: { expression: loop } })]));
    const began = performance.now();
    await run.start();
    assert.ok(performance.now() - began < 5_000, 'stopped by the time limit');
    const failed = run.log.find((e) => e.type === 'StepFailed');
    assert.ok(failed?.type === 'StepFailed');
    assert.equal(failed.stepKey, 'a');
    assert.equal(failed.error.code, 'expression_failed');
    assert.match(
      failed.error.message,
      /^step a: expression "\( \$loop := .*" failed: Evaluation timeout after 500 milliseconds/,
    );
    assert.equal(run.s.status, 'failed');
    run.assertReplays();
  });
});

describe('decide: parallel', () => {
  it('starts every branch at once and joins when all complete', async () => {
    const run = new Run(
      plan([
        { id: 'p', type: 'parallel', branches: [[task('a1', 'x.a1'), task('a2', 'x.a2')], [task('b1', 'x.b1')]] },
        task('after', 'x.after'),
      ]),
    );
    assert.deepEqual(scheduled(await run.start()), ['a1:x.a1#1', 'b1:x.b1#1']);
    assert.deepEqual(scheduled(await run.complete('b1')), []);
    assert.deepEqual(scheduled(await run.complete('a1')), ['a2:x.a2#1']);
    const joined = await run.complete('a2');
    assert.deepEqual(scheduled(joined), ['after:x.after#1']);
    assert.equal(run.s.steps.p?.status, 'completed');
    run.assertReplays();
  });
});

describe('decide: forEach', () => {
  it('stages items in buckets so a fast step keeps going while a slow one drains', async () => {
    const run = new Run(
      plan([
        {
          id: 'each',
          type: 'forEach',
          items: 'input.parts',
          concurrency: 2,
          output: 'each',
          steps: [
            task('fast', 'x.fast', { input: { fields: { part: 'item', i: 'index' } } }),
            task('slow', 'x.slow', { input: { fields: { copied: 'outputs.fast' } } }),
          ],
        },
      ]),
    );
    const started = await run.start({ parts: ['p0', 'p1', 'p2', 'p3'] });
    assert.deepEqual(scheduled(started), ['fast[0]:x.fast#1', 'fast[1]:x.fast#1']);
    // The item data goes apart; the state keeps references (indices) only.
    assert.deepEqual(run.items.get('each'), ['p0', 'p1', 'p2', 'p3']);
    assert.equal(run.s.forEach.each?.count, 4);
    assert.deepEqual(Object.keys({ ...run.s.forEach.each }).sort(), ['count', 'done', 'entered', 'inFlight', 'ready']);
    assert.equal(run.s.forEach.each.entered, 2, 'items 0 and 1 entered the first step; 2 and 3 wait behind the cursor');
    const opened = started.find((e) => e.type === 'StepOpened');
    assert.equal(JSON.stringify(opened).includes('p3'), false);
    assert.deepEqual(inputOf(started, 'fast[1]'), { part: 'p1', i: 1 });
    // fast[0] done: its slot goes to fast[2], and item 0 moves on to slow.
    const e1 = await run.complete('fast[0]', 'f0');
    assert.deepEqual(scheduled(e1), ['fast[2]:x.fast#1', 'slow[0]:x.slow#1']);
    assert.deepEqual(inputOf(e1, 'slow[0]'), { copied: 'f0' });
    // slow[0] stays busy; fast keeps draining its bucket.
    assert.deepEqual(scheduled(await run.complete('fast[1]', 'f1')), ['fast[3]:x.fast#1', 'slow[1]:x.slow#1']);
    assert.deepEqual(scheduled(await run.complete('fast[2]', 'f2')), []);
    assert.deepEqual(run.s.forEach.each.ready.slow, [2]);
    assert.deepEqual(scheduled(await run.complete('slow[0]', 's0')), ['slow[2]:x.slow#1']);
    await run.complete('fast[3]', 'f3');
    await run.complete('slow[1]', 's1');
    await run.complete('slow[2]', 's2');
    const done = await run.complete('slow[3]', 's3');
    assert.deepEqual(types(done).slice(-2), ['StepCompleted', 'ExecutionCompleted']);
    assert.deepEqual(run.s.steps.each?.output, ['s0', 's1', 's2', 's3']);
    assert.deepEqual(Object.keys(run.s.steps), ['each'], 'finished items left the state');
    run.assertReplays();
  });

  it('reads an item only for a step whose expressions need it, once per step', async () => {
    const run = new Run(
      plan([
        {
          id: 'each',
          type: 'forEach',
          items: 'input.parts',
          concurrency: 1,
          output: 'each',
          steps: [task('plain', 'x.plain'), task('mapped', 'x.mapped', { input: { fields: { part: 'item' } } })],
        },
      ]),
    );
    await run.start({ parts: ['p0', 'p1'] });
    assert.equal(run.itemReads, 0, 'the decision that opened the items has them at hand');
    const events = await run.complete('plain[0]', 'x');
    assert.deepEqual(scheduled(events), ['plain[1]:x.plain#1', 'mapped[0]:x.mapped#1']);
    assert.deepEqual(inputOf(events, 'mapped[0]'), { part: 'p0' });
    assert.deepEqual(inputOf(events, 'plain[1]'), {});
    assert.equal(run.itemReads, 1, 'item 0 for mapped[0]; nothing for plain[1], which maps no input');
    run.assertReplays();
  });

  it('keeps the state small over a long list: finished items leave it, their step rows keep them', async () => {
    const body = [task('work', 'x.work', { input: { fields: { n: 'item' } } })];
    const run = new Run(
      plan([{ id: 'each', type: 'forEach', items: 'input.list', concurrency: 5, output: 'each', steps: body }]),
    );
    const count = 300;
    await run.start({ list: Array.from({ length: count }, (_, i) => i) });
    let largest = 0;
    for (let i = 0; i < count; i++) {
      await run.complete(`work[${i}]`, { doubled: i * 2 });
      // Before the last item: the state less the input (which holds the list itself).
      if (i < count - 1) largest = Math.max(largest, JSON.stringify({ ...run.s, input: null }).length);
      assert.ok(Object.keys(run.s.steps).length <= 6, `at most the forEach and 5 items in flight (item ${i})`);
    }
    assert.equal(run.s.status, 'completed');
    assert.ok(largest < 4000, `the state stays under 4 kB whatever the list's length (largest ${largest} bytes)`);
    assert.deepEqual(
      run.s.steps.each?.output,
      Array.from({ length: count }, (_, i) => ({ doubled: i * 2 })),
      'the output gathers every item, from the rows of retired items',
    );
    // The step rows (projected from the log alone) still hold every item.
    const rows = stepRowsOf(run.s.executionId, undefined, run.log, run.plan);
    assert.equal(rows.size, count + 1);
    assert.deepEqual(rows.get('work[123]')?.output, { doubled: 246 });
    assert.equal(rows.get('work[299]')?.status, 'completed');
    run.assertReplays();
    // A rerun forgets retired items too.
    const rerun = await run.send({ kind: 'rerunFromStep', stepId: 'each' });
    const rewound = rerun.find((e) => e.type === 'ExecutionRewound');
    assert.equal(rewound?.type === 'ExecutionRewound' ? rewound.removedStepKeys.length : 0, count + 1);
    assert.equal(run.s.forEach.each?.entered, 5);
    run.assertReplays();
  });

  it('keeps the items of a body with a compensation in the state, for the saga', async () => {
    const body = [task('work', 'x.work', { compensate: { capability: 'x.undo' } })];
    const run = new Run(
      plan([
        { id: 'each', type: 'forEach', items: 'input.list', concurrency: 2, output: 'each', steps: body },
        task('after', 'x.after'),
      ]),
    );
    await run.start({ list: [0, 1] });
    await run.complete('work[0]');
    await run.complete('work[1]');
    assert.deepEqual(Object.keys(run.s.steps).sort(), ['after', 'each', 'work[0]', 'work[1]']);
    await run.fail('after', 'boom', false);
    assert.deepEqual(scheduled(run.log.slice(-3)).at(-1), 'work[1]~compensate:x.undo#1');
    run.assertReplays();
  });

  it('completes at once over an empty list, and fails when items is not a list', async () => {
    const body = [task('b', 'x.b')];
    const empty = new Run(
      plan([{ id: 'each', type: 'forEach', items: 'input.list', concurrency: 3, output: 'each', steps: body }]),
    );
    await empty.start({ list: [] });
    assert.equal(empty.s.status, 'completed');
    const bad = new Run(
      plan([{ id: 'each', type: 'forEach', items: 'input.list', concurrency: 3, output: 'each', steps: body }]),
    );
    await bad.start({ list: 'nope' });
    assert.equal(bad.s.status, 'failed');
    assert.match(bad.s.error?.message ?? '', /items must be an array/);
  });
});

describe('decide: retries', () => {
  it('retries a retryable failure after exponential back-off with jitter, then fails after maxAttempts', async () => {
    const run = new Run(plan([task('a', 'x.a')]));
    await run.start();
    const f1 = await run.fail('a', 'busy', true);
    const retryAt = f1.find((e) => e.type === 'StepFailed');
    assert.equal(retryAt?.type === 'StepFailed' ? retryAt.retryAt : undefined, new Date(T0 + 1000).toISOString());
    assert.deepEqual(types(f1), ['StepFailed', 'TimerScheduled']);
    assert.deepEqual(scheduled(await run.at(1000).fire('retry')), ['a:x.a#2']);
    const f2 = await run.fail('a', 'busy', true);
    const timer = f2.find((e) => e.type === 'TimerScheduled');
    assert.equal(
      timer?.type === 'TimerScheduled' ? timer.fireAt : undefined,
      new Date(T0 + 1000 + 2000).toISOString(),
      'second wait doubles',
    );
    await run.at(3000).fire('retry');
    await run.fail('a', 'busy', true);
    assert.equal(run.s.status, 'failed', 'three attempts in all');
    assert.equal(run.s.steps.a?.attempt, 3);
    run.assertReplays();
  });

  it('does not retry terminal errors or non-retryable codes', async () => {
    const terminal = new Run(plan([task('a', 'x.a')]));
    await terminal.start();
    await terminal.fail('a', 'bad_input', false);
    assert.equal(terminal.s.status, 'failed');
    const listed = new Run(plan([task('a', 'x.a')]));
    await listed.start();
    await listed.fail('a', 'card_declined', true);
    assert.equal(listed.s.status, 'failed');
    assert.equal(listed.s.error?.code, 'card_declined');
  });
});

describe('decide: timeouts', () => {
  it('times out an attempt that runs past start-to-close and retries it', async () => {
    const run = new Run(plan([task('a', 'x.a', { timeouts: { startToCloseMs: 5000 } })]));
    await run.start();
    const started = await run.send({ kind: 'step.started', stepExecutionId: run.attempt('a'), workerId: 'w1' });
    assert.deepEqual(types(started), ['StepStarted', 'TimerScheduled']);
    const timedOut = await run.at(5000).fire('start-to-close');
    const failed = timedOut.find((e) => e.type === 'StepFailed');
    assert.equal(failed?.type === 'StepFailed' ? failed.error.code : '', 'timeout.start_to_close');
    assert.deepEqual(scheduled(await run.at(6000).fire('retry')), ['a:x.a#2']);
  });

  it('keeps a heartbeating attempt alive and times out a silent one', async () => {
    const run = new Run(plan([task('a', 'x.a', { timeouts: { heartbeatMs: 1000 } })]));
    await run.start();
    const seid = run.attempt('a');
    await run.send({ kind: 'step.started', stepExecutionId: seid, workerId: 'w1' });
    await run.at(800).send({ kind: 'step.heartbeat', stepExecutionId: seid, progress: { done: 10 } });
    const rearmed = await run.at(1000).fire('heartbeat');
    const timer = rearmed.find((e) => e.type === 'TimerScheduled');
    assert.equal(timer?.type === 'TimerScheduled' ? timer.fireAt : '', new Date(T0 + 1800).toISOString());
    const silent = await run.at(1800).fire('heartbeat');
    assert.ok(silent.some((e) => e.type === 'StepFailed' && e.error.code === 'timeout.heartbeat'));
  });

  it('times out a command no worker starts (schedule-to-start)', async () => {
    const run = new Run(plan([task('a', 'x.a', { timeouts: { scheduleToStartMs: 2000 } })]));
    await run.start();
    const events = await run.at(2000).fire('schedule-to-start');
    assert.ok(events.some((e) => e.type === 'StepFailed' && e.error.code === 'timeout.schedule_to_start'));
  });
});

describe('decide: compensation', () => {
  const saga = plan([
    task('reserve', 'inventory.reserve', {
      compensate: { capability: 'inventory.release', input: { fields: { id: 'outputs.reserve.id' } } },
    }),
    task('charge', 'payments.charge', { compensate: { capability: 'payments.refund' } }),
    task('ship', 'shipping.ship'),
  ]);

  it('runs the compensations of completed steps in reverse order when a step fails', async () => {
    const run = new Run(saga);
    await run.start();
    await run.complete('reserve', { id: 'r1' });
    await run.complete('charge', { id: 'c1' });
    const failed = await run.fail('ship', 'no_courier', false);
    assert.deepEqual(types(failed).slice(0, 2), ['StepFailed', 'CompensationStarted']);
    assert.deepEqual(scheduled(failed), ['charge~compensate:payments.refund#1']);
    const next = await run.complete('charge~compensate');
    assert.deepEqual(scheduled(next), ['reserve~compensate:inventory.release#1']);
    assert.deepEqual(inputOf(next, 'reserve~compensate'), { id: 'r1' });
    await run.complete('reserve~compensate');
    assert.equal(run.s.status, 'failed');
    assert.equal(run.s.error?.code, 'no_courier');
    assert.equal(run.log.at(-1)?.type === 'ExecutionFailed' ? run.log.at(-1) : undefined, run.log.at(-1));
    const last = run.log.at(-1);
    assert.ok(last?.type === 'ExecutionFailed' && last.compensated);
    run.assertReplays();
  });

  it('compensates only what completed: payment declined releases the stock', async () => {
    const run = new Run(saga);
    await run.start();
    await run.complete('reserve', { id: 'r1' });
    const declined = await run.fail('charge', 'card_declined', true);
    assert.deepEqual(scheduled(declined), ['reserve~compensate:inventory.release#1']);
  });
});

describe('decide: sleep, signals, sub-recipes', () => {
  it('sleeps durably for a duration or until a time', async () => {
    const run = new Run(
      plan([
        { id: 'nap', type: 'sleep', durationMs: 30_000 },
        { id: 'until', type: 'sleep', until: 'input.wake' },
        task('b', 'x.b'),
      ]),
    );
    const events = await run.start({ wake: new Date(T0 + 90_000).toISOString() });
    const timer = events.find((e) => e.type === 'TimerScheduled');
    assert.equal(timer?.type === 'TimerScheduled' ? timer.fireAt : '', new Date(T0 + 30_000).toISOString());
    const second = await run.at(30_000).fire('sleep', 'nap');
    const t2 = second.find((e) => e.type === 'TimerScheduled');
    assert.equal(t2?.type === 'TimerScheduled' ? t2.fireAt : '', new Date(T0 + 90_000).toISOString());
    assert.deepEqual(scheduled(await run.at(90_000).fire('sleep', 'until')), ['b:x.b#1']);
  });

  it('takes a signal that arrived before the wait, and one that arrives during it', async () => {
    const run = new Run(
      plan([
        task('a', 'x.a'),
        { id: 'approval', type: 'waitForSignal', signal: 'approved', onTimeout: 'fail', output: 'approval' },
        task('b', 'x.b', { input: { fields: { by: 'outputs.approval.by' } } }),
      ]),
    );
    await run.start();
    await run.send({ kind: 'signal', name: 'approved', payload: { by: 'ann' } });
    const afterA = await run.complete('a');
    assert.deepEqual(scheduled(afterA), ['b:x.b#1']);
    assert.deepEqual(inputOf(afterA, 'b'), { by: 'ann' });

    const later = new Run(
      plan([{ id: 'w', type: 'waitForSignal', signal: 'go', onTimeout: 'fail', output: 'w' }, task('b', 'x.b')]),
    );
    await later.start();
    assert.deepEqual(scheduled(await later.send({ kind: 'signal', name: 'other', payload: 1 })), []);
    assert.deepEqual(scheduled(await later.send({ kind: 'signal', name: 'go', payload: 2 })), ['b:x.b#1']);
  });

  it('fails or continues when a signal does not come in time', async () => {
    const failing = new Run(
      plan([{ id: 'w', type: 'waitForSignal', signal: 'go', timeoutMs: 1000, onTimeout: 'fail', output: 'w' }]),
    );
    await failing.start();
    await failing.at(1000).fire('signal-timeout');
    assert.equal(failing.s.error?.code, 'signal_timeout');
    const continuing = new Run(
      plan([
        { id: 'w', type: 'waitForSignal', signal: 'go', timeoutMs: 1000, onTimeout: 'continue', output: 'w' },
        task('b', 'x.b'),
      ]),
    );
    await continuing.start();
    assert.deepEqual(scheduled(await continuing.at(1000).fire('signal-timeout')), ['b:x.b#1']);
  });

  it('starts a sub-recipe and continues with its output', async () => {
    const run = new Run(
      plan([
        {
          id: 'child',
          type: 'subRecipe',
          recipe: 'payments',
          input: { fields: { amount: 'input.amount' } },
          output: 'child',
        },
        task('b', 'x.b', { input: { fields: { receipt: 'outputs.child.receipt' } } }),
      ]),
    );
    const events = await run.start({ amount: 9 });
    const requested = events.find((e) => e.type === 'ChildExecutionRequested');
    assert.ok(requested?.type === 'ChildExecutionRequested');
    assert.deepEqual(requested.input, { amount: 9 });
    const next = await run.send({
      kind: 'child.finished',
      childExecutionId: requested.childExecutionId,
      status: 'completed',
      output: { receipt: 'R9' },
    });
    assert.deepEqual(inputOf(next, 'b'), { receipt: 'R9' });
  });

  it('starts the sub-recipe version fixed when the execution started; a step naming one keeps its own', async () => {
    const steps: Step[] = [
      { id: 'w', type: 'waitForSignal', signal: 'go', onTimeout: 'fail', output: 'w' },
      { id: 'pinned', type: 'subRecipe', recipe: 'payments', output: 'pinned' },
      { id: 'named', type: 'subRecipe', recipe: 'refunds', version: 7, output: 'named' },
    ];
    const run = new Run(plan(steps));
    await run.start({}, { payments: 2, refunds: 9 });
    assert.deepEqual(run.s.subRecipeVersions, { payments: 2, refunds: 9 });
    const requested = (events: EngineEvent[]) =>
      events.flatMap((e) => (e.type === 'ChildExecutionRequested' ? [e] : []));
    const [pinned] = requested(await run.send({ kind: 'signal', name: 'go', payload: null }));
    assert.deepEqual([pinned?.stepKey, pinned?.version], ['pinned', 2]);
    assert.ok(pinned !== undefined);
    const [named] = requested(
      await run.send({ kind: 'child.finished', childExecutionId: pinned.childExecutionId, status: 'completed' }),
    );
    assert.deepEqual([named?.stepKey, named?.version], ['named', 7]);
    run.assertReplays();
    // An execution started before versions were fixed names none: the control plane takes the newest.
    const older = new Run(plan([steps[1] as Step]));
    const events = await older.start();
    const child = events.find((e) => e.type === 'ChildExecutionRequested');
    assert.ok(child?.type === 'ChildExecutionRequested');
    assert.equal(child.version, undefined);
  });
});

describe('decide: cancel, pause, resume', () => {
  it('cancels: nothing more is dispatched and late replies are ignored', async () => {
    const run = new Run(plan([task('a', 'x.a'), task('b', 'x.b')]));
    await run.start();
    const seid = run.attempt('a');
    assert.deepEqual(types(await run.send({ kind: 'cancel', reason: 'customer asked' })), ['ExecutionCancelled']);
    assert.deepEqual(await run.send({ kind: 'step.completed', stepExecutionId: seid, output: 1 }), []);
    assert.equal(run.s.status, 'cancelled');
  });

  it('pauses: in-flight steps finish, nothing new starts until resumed', async () => {
    const run = new Run(
      plan([{ id: 'p', type: 'parallel', branches: [[task('a', 'x.a'), task('a2', 'x.a2')], [task('b', 'x.b')]] }]),
    );
    await run.start();
    await run.send({ kind: 'pause' });
    assert.deepEqual(scheduled(await run.complete('a')), [], 'a2 waits');
    await run.complete('b');
    assert.equal(run.s.status, 'paused');
    assert.deepEqual(scheduled(await run.send({ kind: 'resume' })), ['a2:x.a2#1']);
    await run.complete('a2');
    assert.equal(run.s.status, 'completed');
    run.assertReplays();
  });
});

describe('decide: dead letters and operator actions', () => {
  const chain = () =>
    new Run(
      plan([
        task('a', 'x.a'),
        task('b', 'x.b', { input: { fields: { from: 'outputs.a' } } }),
        task('c', 'x.c', { input: { fields: { from: 'outputs.b' } } }),
      ]),
    );
  const deadLetter = (run: Run, stepKey: string) =>
    run.send({
      kind: 'step.failed',
      stepExecutionId: run.attempt(stepKey),
      error: { code: 'input_invalid', message: 'bad input', retryable: false },
      deadLettered: true,
    });

  it('parks a dead-lettered step instead of failing; a requeued command completes it', async () => {
    const run = chain();
    await run.start();
    const seid = run.attempt('a');
    assert.deepEqual(types(await deadLetter(run, 'a')), ['StepDeadLettered']);
    assert.equal(run.s.status, 'running', 'the execution waits for an operator');
    assert.equal(run.s.steps.a?.status, 'dead_lettered');
    assert.deepEqual(await run.send({ kind: 'step.completed', stepExecutionId: seid, output: 1 }), [], 'not in flight');
    assert.deepEqual(types(await run.send({ kind: 'requeue', stepExecutionId: seid })), ['StepRequeued']);
    assert.deepEqual(
      await run.send({ kind: 'requeue', stepExecutionId: seid }),
      [],
      'a second requeue changes nothing',
    );
    const next = await run.send({ kind: 'step.completed', stepExecutionId: seid, output: 'A' });
    assert.deepEqual(scheduled(next), ['b:x.b#1']);
    assert.deepEqual(inputOf(next, 'b'), { from: 'A' });
    run.assertReplays();
  });

  it('retryStep sends a new attempt now and makes the abandoned one stale', async () => {
    const run = chain();
    await run.start();
    const first = run.attempt('a');
    await deadLetter(run, 'a');
    const retried = await run.send({ kind: 'retryStep', stepKey: 'a' });
    assert.deepEqual(scheduled(retried), ['a:x.a#2']);
    assert.equal(run.s.attempts[first], undefined);
    assert.deepEqual(await run.send({ kind: 'step.completed', stepExecutionId: first, output: 'old' }), []);
    // Also an attempt in flight (a hung worker, no timeout): retried at once.
    const second = run.attempt('a');
    assert.deepEqual(scheduled(await run.send({ kind: 'retryStep', stepKey: 'a' })), ['a:x.a#3']);
    assert.deepEqual(await run.send({ kind: 'step.completed', stepExecutionId: second, output: 'old' }), []);
    assert.deepEqual(scheduled(await run.complete('a', 'A3')), ['b:x.b#1']);
    run.assertReplays();
  });

  it('skipStep completes the step with the operator output, which later steps see', async () => {
    const run = chain();
    await run.start();
    await run.complete('a', 'A');
    await run.fail('b', 'busy', true);
    assert.equal(run.s.steps.b?.status, 'retry_wait');
    const skipped = await run.send({ kind: 'skipStep', stepKey: 'b', output: { patched: true } });
    assert.deepEqual(types(skipped).slice(0, 2), ['TimerCleared', 'StepCompleted']);
    assert.deepEqual(inputOf(skipped, 'c'), { from: { patched: true } });
    assert.equal(Object.keys(run.s.timers).length, 0, 'the retry timer is gone');
    run.assertReplays();
  });

  it('refuses actions that do not apply, changing nothing', async () => {
    const run = chain();
    await run.start();
    await run.complete('a', 'A');
    const before = run.s;
    await assert.rejects(run.send({ kind: 'retryStep', stepKey: 'a' }), {
      code: 'SOUS_ACTION_REFUSED',
      message: /is completed/,
    });
    await assert.rejects(run.send({ kind: 'skipStep', stepKey: 'zzz', output: 1 }), { message: /no step "zzz"/ });
    await assert.rejects(run.send({ kind: 'rerunFromStep', stepId: 'nope' }), { message: /not a top-level step/ });
    assert.equal(run.s, before);
    await run.send({ kind: 'cancel' });
    await assert.rejects(run.send({ kind: 'retryStep', stepKey: 'b' }), { message: /cancelled: use rerunFromStep/ });
  });

  it('rerunFromStep runs a failed execution again from a top-level step, forgetting what came after', async () => {
    const run = chain();
    await run.start();
    await run.complete('a', 'A');
    await run.fail('b', 'boom', false);
    assert.equal(run.s.status, 'failed');
    const rerun = await run.send({ kind: 'rerunFromStep', stepId: 'b' });
    assert.deepEqual(types(rerun).slice(0, 1), ['ExecutionRewound']);
    assert.deepEqual(scheduled(rerun), ['b:x.b#1'], 'a first attempt again');
    assert.equal(run.s.status, 'running');
    assert.equal(run.s.error, undefined);
    assert.equal(run.s.steps.a?.output, 'A', 'earlier steps are kept');
    await run.complete('b', 'B');
    await run.complete('c', 'C');
    assert.equal(run.s.status, 'completed');
    run.assertReplays();
  });

  it('refuses a rerun past steps whose compensations already ran', async () => {
    const run = new Run(
      plan([
        task('reserve', 'inv.reserve', { compensate: { capability: 'inv.release' } }),
        task('charge', 'pay.charge'),
      ]),
    );
    await run.start();
    await run.complete('reserve', 'R');
    await run.fail('charge', 'card_declined', false);
    await run.complete('reserve~compensate');
    assert.equal(run.s.status, 'failed');
    await assert.rejects(run.send({ kind: 'rerunFromStep', stepId: 'charge' }), { message: /were compensated/ });
    const again = await run.send({ kind: 'rerunFromStep', stepId: 'reserve' });
    assert.deepEqual(scheduled(again), ['reserve:inv.reserve#1']);
    assert.equal(run.s.steps['reserve~compensate'], undefined);
    run.assertReplays();
  });
});

describe('decide: the attempt start a final reply carries', () => {
  const EXECUTION = 'e0000000-0000-4000-8000-000000000000';
  const startedAt = new Date(T0 + 100).toISOString();
  const attemptRow = (run: Run, stepExecutionId: string) => attemptRowsOf(EXECUTION, run.log).get(stepExecutionId);

  it('records who began an attempt and when from its completion when no step.started came', async () => {
    const run = new Run(plan([task('a', 'x.a'), task('b', 'x.b')]));
    await run.start();
    const seid = run.attempt('a');
    const events = await run
      .at(300)
      .send({ kind: 'step.completed', stepExecutionId: seid, output: 'A', startedAt, workerId: 'w1' });
    const completed = events.find((e) => e.type === 'StepCompleted');
    assert.ok(completed?.type === 'StepCompleted');
    assert.deepEqual([completed.startedAt, completed.workerId], [startedAt, 'w1']);
    const row = attemptRow(run, seid);
    assert.deepEqual(
      { status: row?.status, worker: row?.worker_id, started: row?.started_at, finished: row?.finished_at },
      { status: 'completed', worker: 'w1', started: startedAt, finished: new Date(T0 + 300).toISOString() },
    );
    assert.equal(run.s.steps.b?.status, 'scheduled', 'the execution moves on');
    run.assertReplays();
  });

  it('records it from a failure, which retries as before', async () => {
    const run = new Run(plan([task('a', 'x.a')]));
    await run.start();
    const seid = run.attempt('a');
    const events = await run.at(300).send({
      kind: 'step.failed',
      stepExecutionId: seid,
      error: { code: 'busy', message: 'busy', retryable: true },
      startedAt,
      workerId: 'w1',
    });
    const failed = events.find((e) => e.type === 'StepFailed');
    assert.ok(failed?.type === 'StepFailed' && failed.retryAt !== undefined, 'a retry is due');
    assert.equal(failed.startedAt, startedAt);
    const row = attemptRow(run, seid);
    assert.deepEqual([row?.status, row?.worker_id, row?.started_at], ['failed', 'w1', startedAt]);
    run.assertReplays();
  });

  it('keeps the start step.started recorded, and never records a start after the decision', async () => {
    const run = new Run(plan([task('a', 'x.a'), task('b', 'x.b')]));
    await run.start();
    const a = run.attempt('a');
    await run.at(200).send({ kind: 'step.started', stepExecutionId: a, workerId: 'w1', startedAt });
    const done = await run
      .at(400)
      .send({ kind: 'step.completed', stepExecutionId: a, output: 'A', startedAt, workerId: 'w1' });
    const completed = done.find((e) => e.type === 'StepCompleted');
    assert.equal(completed?.type === 'StepCompleted' ? completed.startedAt : 'missing', undefined);
    assert.equal(attemptRow(run, a)?.started_at, startedAt, 'from step.started, the worker clock');
    const b = run.attempt('b');
    // A worker clock ahead of the control plane's: the start is clamped to the decision.
    await run.at(500).send({
      kind: 'step.completed',
      stepExecutionId: b,
      output: 'B',
      startedAt: new Date(T0 + 90_000).toISOString(),
      workerId: 'w2',
    });
    assert.equal(attemptRow(run, b)?.started_at, new Date(T0 + 500).toISOString());
    run.assertReplays();
  });

  it('replays events stored before replies carried a start', () => {
    const at = (ms: number) => new Date(T0 + ms).toISOString();
    const seid = '00000000-0000-4000-8000-000000000001';
    const log: EngineEvent[] = [
      {
        type: 'StepScheduled',
        at: at(0),
        stepKey: 'a',
        stepId: 'a',
        stepExecutionId: seid,
        attempt: 1,
        capability: 'x.a',
        input: null,
        timeouts: {},
      },
      { type: 'StepStarted', at: at(10), stepKey: 'a', stepExecutionId: seid, workerId: 'w1' },
      { type: 'StepCompleted', at: at(20), stepKey: 'a', stepExecutionId: seid, output: 'A' },
    ];
    const row = attemptRowsOf(EXECUTION, log).get(seid);
    assert.deepEqual([row?.status, row?.worker_id, row?.started_at], ['completed', 'w1', at(10)]);
  });
});
