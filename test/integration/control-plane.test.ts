// The control plane end to end on the real stack: start → outbox → Debezium → Kafka →
// worker → reply topic → decision → next command, for each construct.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { ExecutionFinishedError, RecipeNotFoundError } from '../../src/control-plane/errors.js';
import { getEvents, getExecution } from '../../src/control-plane/queries.js';
import { currentStates } from '../../src/control-plane/execution-states.js';
import { rebuildExecution } from '../../src/control-plane/rebuild.js';
import { verifyExecution } from '../../src/control-plane/verify.js';
import type { RecipePlan, RetryPolicy, Step, TaskStep } from '../../src/recipe/plan.js';
import { startTestControlPlane, waitForExecution } from '../helpers/control-plane.js';
import { testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, type TestWorker } from '../helpers/test-worker.js';

const kafka = testKafka();
const RETRY: RetryPolicy = {
  maxAttempts: 3,
  initialIntervalMs: 200,
  backoffCoefficient: 2,
  maxIntervalMs: 1000,
  jitter: 0,
  nonRetryableErrorCodes: ['card_declined'],
};
const ns = uniqueName('cp').replaceAll('-', '');
const cap = (name: string) => `test${ns}.${name}`;
const task = (id: string, capability: string, extra: Partial<TaskStep> = {}): TaskStep => ({
  id,
  type: 'task',
  capability: cap(capability),
  output: id,
  retry: RETRY,
  timeouts: {},
  ...extra,
});
const recipe = (name: string, steps: Step[], output?: string): RecipePlan => ({
  name: `${ns}.${name}`.toLowerCase(),
  steps,
  ...(output === undefined ? {} : { output }),
});

let cp: ControlPlane & { replyTopic: string };
let worker: TestWorker;
const declined = new Set<string>();
const flaky = new Map<string, number>();

before(async () => {
  cp = await startTestControlPlane();
  worker = await startTestWorker(kafka, {
    [cap('reserve')]: async (c) => ({ output: { reservation: `res-${(c.input as { sku: string }).sku}` } }),
    [cap('release')]: async () => ({ output: { released: true } }),
    [cap('charge')]: async (c) => {
      const input = c.input as { card: string; amount: number };
      if (declined.has(input.card)) return { error: { code: 'card_declined', message: 'declined', retryable: true } };
      return { output: { chargeId: `ch-${input.amount}` } };
    },
    [cap('refund')]: async () => ({ output: { refunded: true } }),
    [cap('ship')]: async () => ({ output: { tracking: 'T-1' } }),
    [cap('flaky')]: async (c) => {
      const n = (flaky.get(c.executionId) ?? 0) + 1;
      flaky.set(c.executionId, n);
      return n < 3 ? { error: { code: 'busy', message: `try ${n}`, retryable: true } } : { output: { tries: n } };
    },
    [cap('echo')]: async (c) => ({ output: c.input }),
    [cap('never')]: async () => 'no-reply',
  });
});

after(async () => {
  await worker.stop();
  await cp.stop();
});

const saga = recipe(
  'order-saga',
  [
    task('reserve', 'reserve', {
      input: { fields: { sku: 'input.sku' } },
      compensate: { capability: cap('release'), input: { fields: { reservation: 'outputs.reserve.reservation' } } },
    }),
    task('charge', 'charge', {
      input: { fields: { card: 'input.card', amount: 'input.amount' } },
      compensate: { capability: cap('refund') },
    }),
    task('ship', 'ship', { input: { fields: { reservation: 'outputs.reserve.reservation' } } }),
  ],
  '{ "tracking": outputs.ship.tracking, "charge": outputs.charge.chargeId }',
);

describe('control plane', () => {
  it('registers immutable versions: the same plan keeps its version, a change makes the next', async () => {
    const first = await cp.registerRecipe(saga);
    const again = await cp.registerRecipe(saga);
    assert.deepEqual({ ...again, created: true }, first);
    assert.equal(again.created, false);
    const changed = await cp.registerRecipe({ ...saga, description: 'v2' });
    assert.equal(changed.version, first.version + 1);
    await assert.rejects(cp.startExecution({ recipe: 'no-such-recipe' }), RecipeNotFoundError);
  });

  it('runs a saga end to end, and the same idempotency key returns the same execution', async () => {
    await cp.registerRecipe(saga);
    const key = uniqueName('order');
    const [a, b] = await Promise.all([
      cp.startExecution({
        recipe: saga.name,
        version: 1,
        input: { sku: 'S1', card: 'ok', amount: 12 },
        idempotencyKey: key,
      }),
      cp.startExecution({
        recipe: saga.name,
        version: 1,
        input: { sku: 'S1', card: 'ok', amount: 12 },
        idempotencyKey: key,
      }),
    ]);
    assert.equal(a.executionId, b.executionId);
    assert.deepEqual([a.created, b.created].sort(), [false, true]);
    const done = await waitForExecution(cp, a.executionId);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.output, { tracking: 'T-1', charge: 'ch-12' });
    assert.deepEqual(
      done.steps.map((s) => `${s.stepKey}:${s.status}`),
      ['reserve:completed', 'charge:completed', 'ship:completed'],
    );
    const commands = worker.received.filter((c) => c.executionId === a.executionId);
    assert.equal(commands.length, 3, 'each step dispatched once');
    assert.equal(commands[0]?.idempotencyKey, `${a.executionId}/reserve`);
  });

  it('compensates in reverse order when payment is declined (non-retryable code)', async () => {
    const card = uniqueName('card');
    declined.add(card);
    const { executionId } = await cp.startExecution({
      recipe: saga.name,
      version: 1,
      input: { sku: 'S2', card, amount: 5 },
    });
    const done = await waitForExecution(cp, executionId);
    assert.equal(done.status, 'failed');
    assert.equal((done.error as { code: string }).code, 'card_declined');
    const release = done.steps.find((s) => s.stepKey === 'reserve~compensate');
    assert.equal(release?.status, 'completed');
    assert.equal(done.steps.find((s) => s.stepKey === 'charge')?.attempts, 1, 'card_declined is not retried');
    assert.ok(
      !done.steps.some((s) => s.stepKey === 'charge~compensate'),
      'a step that never completed is not compensated',
    );
    const releaseCommand = worker.received.find(
      (c) => c.executionId === executionId && c.capability === cap('release'),
    );
    assert.deepEqual(releaseCommand?.input, { reservation: 'res-S2' });
  });

  it('retries with back-off through graphile-worker timers', async () => {
    const plan = recipe('retry', [task('flaky', 'flaky')]);
    await cp.registerRecipe(plan);
    const { executionId } = await cp.startExecution({ recipe: plan.name });
    const done = await waitForExecution(cp, executionId);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.output, { flaky: { tries: 3 } });
    const attempts = await sql<{ attempt: number; status: string }>`
      SELECT attempt, status FROM sous.step_attempt WHERE execution_id = ${executionId} ORDER BY attempt`.execute(
      cp.db,
    );
    assert.deepEqual(attempts.rows, [
      { attempt: 1, status: 'failed' },
      { attempt: 2, status: 'failed' },
      { attempt: 3, status: 'completed' },
    ]);
  });

  it('applies a duplicated reply once', async () => {
    const plan = recipe('dup', [task('a', 'echo', { input: { expression: '{"v": 1}' } }), task('b', 'echo')]);
    await cp.registerRecipe(plan);
    const { executionId } = await cp.startExecution({ recipe: plan.name });
    const view = await waitForExecution(cp, executionId);
    assert.equal(view.status, 'completed');
    const before = (await getEvents(cp.db, executionId)).length;
    // Replay the completion of step a with the same message id twice, and a new one.
    const attempt = await sql<{
      id: string;
    }>`SELECT id FROM sous.step_attempt WHERE execution_id = ${executionId} AND step_key = 'a'`.execute(cp.db);
    const stepExecutionId = attempt.rows[0]?.id ?? '';
    const messageId = randomUUID();
    for (let i = 0; i < 2; i++) {
      await worker.reply(
        { kind: 'step.completed', messageId, executionId, stepExecutionId, output: { v: 2 } },
        cp.replyTopic,
      );
    }
    await sleep(1500);
    assert.equal(
      (await getEvents(cp.db, executionId)).length,
      before,
      'a finished execution ignores late and duplicate replies',
    );
    // Recognised by the attempt's state (already completed), not by a row per reply.
    const processed = await sql<{
      n: string;
    }>`SELECT count(*) AS n FROM sous.processed_message WHERE message_id = ${messageId}`.execute(cp.db);
    assert.equal(processed.rows[0]?.n, '0');
  });

  it('waits for a signal, sleeps durably, then continues', async () => {
    const plan = recipe('signal', [
      {
        id: 'approval',
        type: 'waitForSignal',
        signal: 'approved',
        timeoutMs: 60_000,
        onTimeout: 'fail',
        output: 'approval',
      },
      { id: 'nap', type: 'sleep', durationMs: 300 },
      task('after', 'echo', { input: { fields: { by: 'outputs.approval.by' } } }),
    ]);
    await cp.registerRecipe(plan);
    const { executionId } = await cp.startExecution({ recipe: plan.name });
    await sleep(300);
    assert.equal((await getExecution(cp.db, executionId)).status, 'running');
    await cp.signalExecution(executionId, 'approved', { by: 'ann' });
    const done = await waitForExecution(cp, executionId);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.steps.find((s) => s.stepKey === 'after')?.output, { by: 'ann' });
  });

  it('cancels a running execution and refuses actions on a finished one', async () => {
    const plan = recipe('cancel', [task('stuck', 'never'), task('later', 'echo')]);
    await cp.registerRecipe(plan);
    const { executionId } = await cp.startExecution({ recipe: plan.name });
    await waitForExecution(cp, executionId, (v) =>
      v.steps.some((s) => s.stepKey === 'stuck' && s.status === 'running'),
    );
    assert.equal(await cp.cancelExecution(executionId, 'test'), 'cancelled');
    await assert.rejects(cp.cancelExecution(executionId), ExecutionFinishedError);
    await assert.rejects(cp.signalExecution(executionId, 'x'), /already cancelled/);
  });

  it('runs parallel branches, forEach and a sub-recipe', async () => {
    const child = recipe(
      'child',
      [task('double', 'echo', { input: { expression: '{"n": input.n * 2}' } })],
      'outputs.double.n',
    );
    await cp.registerRecipe(child);
    const plan = recipe(
      'constructs',
      [
        {
          id: 'both',
          type: 'parallel',
          branches: [
            [task('left', 'echo', { input: { expression: '"L"' } })],
            [task('right', 'echo', { input: { expression: '"R"' } })],
          ],
        },
        {
          id: 'each',
          type: 'forEach',
          items: 'input.items',
          concurrency: 2,
          output: 'each',
          steps: [task('item', 'echo', { input: { expression: '{"i": index, "v": item}' } })],
        },
        {
          id: 'sub',
          type: 'subRecipe',
          recipe: child.name,
          input: { fields: { n: '$count(outputs.each)' } },
          output: 'sub',
        },
      ],
      '{ "left": outputs.left, "each": outputs.each.v, "sub": outputs.sub }',
    );
    await cp.registerRecipe(plan);
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: { items: ['a', 'b', 'c', 'd', 'e'] } });
    const done = await waitForExecution(cp, executionId);
    assert.equal(done.status, 'completed', JSON.stringify(done.error));
    assert.deepEqual(done.output, { left: 'L', each: ['a', 'b', 'c', 'd', 'e'], sub: 10 });
    // The items were staged apart; the execution state references them by index only.
    const items = await sql<{ item_index: number; data: unknown }>`
      SELECT item_index, data FROM sous.foreach_item WHERE execution_id = ${executionId} ORDER BY item_index`.execute(
      cp.db,
    );
    assert.deepEqual(
      items.rows.map((r) => [r.item_index, r.data]),
      [
        [0, 'a'],
        [1, 'b'],
        [2, 'c'],
        [3, 'd'],
        [4, 'e'],
      ],
    );
    const state = (await currentStates(cp.db, cp.environment.plans, [executionId])).get(executionId);
    const fe = state?.forEach.each as unknown as Record<string, unknown> | undefined;
    assert.equal(fe?.count, 5);
    assert.equal(fe.items, undefined);
  });

  it('sends an input over the inline limit by reference (claim check)', async () => {
    const plan = recipe('claim-check', [task('big', 'echo', { input: { fields: { blob: 'input.blob' } } })]);
    await cp.registerRecipe(plan);
    const blob = 'x'.repeat(70 * 1024);
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: { blob } });
    await waitForExecution(cp, executionId, () => worker.received.some((c) => c.executionId === executionId));
    const command = worker.received.find((c) => c.executionId === executionId);
    assert.equal(command?.input, undefined, 'the Kafka message does not carry the data');
    assert.ok(command?.inputRef);
    assert.ok(command.inputRef.bytes > 70 * 1024);
    const stored = await sql<{
      data: { blob: string };
    }>`SELECT data FROM sous_payload.payload WHERE id = ${command.inputRef.ref}`.execute(cp.db);
    assert.equal(stored.rows[0]?.data.blob, blob);
    assert.equal((await waitForExecution(cp, executionId)).status, 'completed');
  });

  it('rebuilds the step, attempt and execution rows from the event log alone', async () => {
    const card = uniqueName('card');
    declined.add(card);
    const { executionId } = await cp.startExecution({
      recipe: saga.name,
      version: 1,
      input: { sku: 'S3', card, amount: 1 },
    });
    await waitForExecution(cp, executionId);
    const snapshot = async () => ({
      execution: (
        await sql`SELECT status, input, output, error, state, last_seq, created_at, updated_at, finished_at FROM sous.execution WHERE id = ${executionId}`.execute(
          cp.db,
        )
      ).rows,
      steps: (await sql`SELECT * FROM sous.step WHERE execution_id = ${executionId} ORDER BY step_key`.execute(cp.db))
        .rows,
      attempts: (
        await sql`SELECT * FROM sous.step_attempt WHERE execution_id = ${executionId} ORDER BY id`.execute(cp.db)
      ).rows,
    });
    const before = await snapshot();
    assert.ok(before.steps.length >= 3);
    await rebuildExecution(cp.db, cp.environment.plans, executionId);
    assert.deepEqual(await snapshot(), before);
    // verifyExecution compares the tables with the log without writing: they agree, and
    // a row changed behind the engine's back is found.
    assert.deepEqual(await verifyExecution(cp.db, cp.environment.plans, executionId), []);
    await sql`UPDATE sous.step SET attempts = 99 WHERE execution_id = ${executionId} AND step_key = 'reserve'`.execute(
      cp.db,
    );
    const found = await verifyExecution(cp.db, cp.environment.plans, executionId);
    // The step's count of attempts is its current attempt's number too (0022: one column on
    // the step row), so the attempt shows the change as well.
    const { rows: current } = await sql<{ attempt_id: string }>`SELECT attempt_id FROM sous.step
      WHERE execution_id = ${executionId} AND step_key = 'reserve'`.execute(cp.db);
    assert.deepEqual(
      found.map((d) => [d.table, d.key, d.column, d.inTable]),
      [
        ['step', 'reserve', 'attempts', 99],
        ['step_attempt', current[0]?.attempt_id, 'attempt', 99],
      ],
    );
    await rebuildExecution(cp.db, cp.environment.plans, executionId);
    assert.deepEqual(await verifyExecution(cp.db, cp.environment.plans, executionId), []);
  });
});
