// How executions end, on the real stack: onFailure / finally steps after the
// compensations, the execution deadline, and the compensation plan (GraphQL and CLI).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createApiToken } from '../../src/api/auth.js';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { InvalidStartError } from '../../src/control-plane/errors.js';
import { getEvents } from '../../src/control-plane/queries.js';
import { verifyExecution } from '../../src/control-plane/verify.js';
import { parseRecipeYaml } from '../../src/recipe/index.js';
import { startTestApi } from '../helpers/api.js';
import { waitForExecution } from '../helpers/control-plane.js';
import { stackConfig, testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, type TestWorker } from '../helpers/test-worker.js';

const kafka = testKafka();
const ns = uniqueName('fin').replaceAll('-', '');
const cap = (name: string) => `test${ns}.${name}`;
const recipeName = (name: string) => `${ns}.${name}`.toLowerCase();

let cp: ControlPlane & { replyTopic: string };
let url: string;
let token: string;
let worker: TestWorker;
const cleanup: (() => Promise<unknown>)[] = [];
/** Notifications the customer got, by execution. */
const notified = new Map<string, unknown[]>();

async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: unknown[] };
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  assert.ok(body.data);
  return body.data;
}

const sagaYaml = (name: string, extra = '') => `
name: ${recipeName(name)}
steps:
  - id: reserve
    capability: ${cap('reserve')}
    input: { sku: input.sku }
    compensate:
      capability: ${cap('release')}
      input: { reservation: outputs.reserve.reservation }
  - id: charge
    capability: ${cap('charge')}
    input: { card: input.card }
    retry: { maxAttempts: 1 }
    compensate: { capability: ${cap('refund')}, input: { charge: outputs.charge.id } }
  - id: ship
    capability: ${cap('ship')}
    retry: { maxAttempts: 1 }
onFailure:
  - id: notify
    capability: ${cap('notify')}
    input: { customer: input.customer, reason: failure.code, outcome: outcome }
    retry: { maxAttempts: 1 }
finally:
  - id: audit
    capability: ${cap('audit')}
    input: { outcome: outcome }
${extra}`;

before(async () => {
  ({ controlPlane: cp, url } = await startTestApi(ns, cleanup));
  token = (await createApiToken(cp.db, uniqueName('test-operator'), 'operator', 'finishing.test')).token;
  worker = await startTestWorker(kafka, {
    [cap('reserve')]: async (c) => ({ output: { reservation: `res-${(c.input as { sku: string }).sku}` } }),
    [cap('release')]: async () => ({ output: { released: true } }),
    [cap('charge')]: async (c) =>
      (c.input as { card: string }).card === 'declined'
        ? { error: { code: 'card_declined', message: 'declined', retryable: false } }
        : { output: { id: 'ch-1' } },
    [cap('refund')]: async () => ({ output: { refunded: true } }),
    [cap('ship')]: async (c) =>
      (c.input as { hold?: boolean } | null)?.hold === false ? { output: 'T-1' } : 'no-reply',
    [cap('notify')]: async (c) => {
      const input = c.input as { customer: string };
      if (input.customer === 'unreachable')
        return { error: { code: 'smtp_down', message: 'no mail', retryable: false } };
      notified.set(c.executionId, [...(notified.get(c.executionId) ?? []), c.input]);
      return { output: { sent: true } };
    },
    [cap('audit')]: async () => ({ output: { written: true } }),
  });
  cleanup.push(() => worker.stop());
  await cp.registerRecipe(parseRecipeYaml(sagaYaml('saga')));
});

after(async () => {
  for (const close of cleanup.reverse()) await close();
});

const stepStatuses = (steps: readonly { stepKey: string; status: string }[]) =>
  Object.fromEntries(steps.map((s) => [s.stepKey, s.status]));

describe('onFailure and finally steps', () => {
  it('notify the customer after the compensations, with the failure, and keep the failure', async () => {
    const { executionId } = await cp.startExecution({
      recipe: recipeName('saga'),
      input: { sku: 'S1', card: 'declined', customer: 'c-1' },
    });
    const done = await waitForExecution(cp, executionId);
    assert.equal(done.status, 'failed');
    assert.equal((done.error as { code: string }).code, 'card_declined');
    assert.deepEqual(stepStatuses(done.steps), {
      reserve: 'completed',
      charge: 'failed',
      'reserve~compensate': 'completed',
      notify: 'completed',
      audit: 'completed',
    });
    assert.deepEqual(notified.get(executionId), [{ customer: 'c-1', reason: 'card_declined', outcome: 'failed' }]);
    // In this order: the compensation, then onFailure, then finally.
    const events = await getEvents(cp.db, executionId);
    const order = events.flatMap((e) => (e.type === 'StepScheduled' ? [e.stepKey] : []));
    assert.deepEqual(order, ['reserve', 'charge', 'reserve~compensate', 'notify', 'audit']);
    assert.deepEqual(await verifyExecution(cp.db, cp.environment.plans, executionId), []);
  });

  it('record a failing handler without hiding the failure; the next handler still runs', async () => {
    const { executionId } = await cp.startExecution({
      recipe: recipeName('saga'),
      input: { sku: 'S2', card: 'declined', customer: 'unreachable' },
    });
    const done = await waitForExecution(cp, executionId);
    assert.equal(done.status, 'failed');
    assert.equal((done.error as { code: string }).code, 'card_declined');
    assert.equal(stepStatuses(done.steps).notify, 'failed');
    assert.equal(stepStatuses(done.steps).audit, 'completed');
    const last = (await getEvents(cp.db, executionId)).at(-1);
    assert.ok(last?.type === 'ExecutionFailed');
    assert.deepEqual(
      last.handlerFailures?.map((f) => [f.stepKey, f.error.code]),
      [['notify', 'smtp_down']],
    );
    const api = await gql<{
      execution: {
        status: string;
        error: { code: string };
        handlerFailures: { stepKey: string; error: { code: string } }[];
      };
    }>(`query($id: ID!) { execution(id: $id) { status error handlerFailures { stepKey error } } }`, {
      id: executionId,
    });
    assert.equal(api.execution.status, 'FAILED');
    assert.equal(api.execution.error.code, 'card_declined');
    assert.deepEqual(
      api.execution.handlerFailures.map((f) => [f.stepKey, f.error.code]),
      [['notify', 'smtp_down']],
    );
  });
});

describe('execution deadline', () => {
  it('cancels the step in flight, compensates and ends timed_out (start deadline over none)', async () => {
    const started = await gql<{ startRecipe: { execution: { id: string } } }>(
      `mutation($recipe: String!, $input: JSON) {
        startRecipe(recipe: $recipe, input: $input, deadline: "3s") { execution { id } } }`,
      { recipe: recipeName('saga'), input: { sku: 'S3', card: 'ok', customer: 'c-3' } },
    );
    const executionId = started.startRecipe.execution.id;
    const done = await waitForExecution(cp, executionId);
    assert.equal(done.status, 'timed_out');
    assert.equal((done.error as { code: string }).code, 'timeout.execution_deadline');
    assert.deepEqual(stepStatuses(done.steps), {
      reserve: 'completed',
      charge: 'completed',
      ship: 'cancelled',
      'charge~compensate': 'completed',
      'reserve~compensate': 'completed',
      notify: 'completed',
      audit: 'completed',
    });
    assert.deepEqual(notified.get(executionId), [
      { customer: 'c-3', reason: 'timeout.execution_deadline', outcome: 'timed_out' },
    ]);
    const { rows } = await sql<{ status: string; code: string }>`
      SELECT status, error->>'code' AS code FROM sous.step_attempt
      WHERE execution_id = ${executionId} AND step_key = 'ship'`.execute(cp.db);
    assert.deepEqual(rows, [{ status: 'cancelled', code: 'timeout.execution_deadline' }]);
    assert.deepEqual(await verifyExecution(cp.db, cp.environment.plans, executionId), []);
  });

  it('refuses a deadline that is not a positive duration, starting nothing', async () => {
    await assert.rejects(cp.startExecution({ recipe: recipeName('saga'), deadline: 0 }), InvalidStartError);
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({
        query: `mutation($recipe: String!) { startRecipe(recipe: $recipe, deadline: "soon") { created } }`,
        variables: { recipe: recipeName('saga') },
      }),
    });
    const body = (await response.json()) as { errors?: { extensions: { code: string } }[] };
    assert.equal(body.errors?.[0]?.extensions.code, 'SOUS_INVALID_ARGUMENT');
  });

  it("takes the recipe's deadline, and removes its timer job when the execution is cancelled", async () => {
    await cp.registerRecipe(parseRecipeYaml(sagaYaml('quick', 'deadline: 1h')));
    const { executionId } = await cp.startExecution({
      recipe: recipeName('quick'),
      input: { sku: 'S4', card: 'ok', customer: 'c-4' },
    });
    const armed = (await getEvents(cp.db, executionId)).find(
      (e) => e.type === 'TimerScheduled' && e.purpose.kind === 'deadline',
    );
    assert.ok(armed?.type === 'TimerScheduled');
    const started = (await getEvents(cp.db, executionId))[0];
    assert.ok(started?.type === 'ExecutionStarted');
    assert.equal(Date.parse(armed.fireAt) - Date.parse(started.at), 3_600_000);
    const jobs = async () =>
      Number(
        (
          await sql<{ n: string }>`SELECT count(*) AS n FROM graphile_worker.jobs WHERE key = ${armed.timerId}`.execute(
            cp.db,
          )
        ).rows[0]?.n,
      );
    assert.equal(await jobs(), 1);
    await cp.cancelExecution(executionId, 'test over');
    assert.equal((await waitForExecution(cp, executionId)).status, 'cancelled');
    assert.equal(await jobs(), 0);
  });
});

describe('cancel reaches the sub-recipes', () => {
  /** The sub-recipe execution a parent's step started, once it has. */
  const childFor = async (parentId: string, stepKey: string): Promise<string> => {
    await waitForExecution(cp, parentId, (v) => v.steps.some((s) => s.stepKey === stepKey));
    const { rows } = await sql<{ child: string | null }>`
      SELECT child_execution_id AS child FROM sous.step
      WHERE execution_id = ${parentId} AND step_key = ${stepKey}`.execute(cp.db);
    const child = rows[0]?.child;
    assert.ok(child, `step ${stepKey} of ${parentId} started a sub-recipe`);
    // The child is started in the parent's transaction: it exists now.
    await waitForExecution(cp, child, () => true);
    return child;
  };

  before(async () => {
    await cp.registerRecipe(
      parseRecipeYaml(`
name: ${recipeName('grandchild')}
steps:
  - id: wait
    waitForSignal: never
`),
    );
    await cp.registerRecipe(
      parseRecipeYaml(`
name: ${recipeName('child')}
steps:
  - id: inner
    subRecipe: ${recipeName('grandchild')}
`),
    );
    await cp.registerRecipe(
      parseRecipeYaml(`
name: ${recipeName('parent')}
steps:
  - id: sub
    subRecipe: ${recipeName('child')}
`),
    );
  });

  it('cancelling a parent cancels its sub-recipe and the sub-recipe of that, in one transaction', async () => {
    const { executionId } = await cp.startExecution({ recipe: recipeName('parent') });
    const child = await childFor(executionId, 'sub');
    const grandchild = await childFor(child, 'inner');
    assert.equal(await cp.cancelExecution(executionId, 'order withdrawn'), 'cancelled');
    for (const id of [executionId, child, grandchild]) {
      const view = await waitForExecution(cp, id, () => true);
      assert.equal(view.status, 'cancelled', `execution ${id}`);
    }
    const cancelled = (await getEvents(cp.db, grandchild)).at(-1);
    assert.ok(cancelled?.type === 'ExecutionCancelled');
    assert.equal(cancelled.reason, `parent execution ${child} was cancelled`);
    // The parent's step stays as it was when the cancel came; the child's late word changes nothing.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal((await waitForExecution(cp, executionId, () => true)).status, 'cancelled');
    for (const id of [executionId, child, grandchild])
      assert.deepEqual(await verifyExecution(cp.db, cp.environment.plans, id), []);
  });

  it('a deadline cancels the sub-recipe its step waits for', async () => {
    const { executionId } = await cp.startExecution({ recipe: recipeName('parent'), deadline: '2s' });
    const child = await childFor(executionId, 'sub');
    const done = await waitForExecution(cp, executionId);
    assert.equal(done.status, 'timed_out');
    assert.equal(done.steps.find((s) => s.stepKey === 'sub')?.status, 'cancelled');
    assert.equal((await waitForExecution(cp, child)).status, 'cancelled');
  });
});

describe('compensationPlan', () => {
  it('shows what a failure now would undo, in order, with inputs, changing nothing (GraphQL and CLI)', async () => {
    const { executionId } = await cp.startExecution({
      recipe: recipeName('saga'),
      input: { sku: 'S5', card: 'ok', customer: 'c-5' },
    });
    // ship runs (the worker said so) and never replies: nothing more happens to the execution.
    await waitForExecution(cp, executionId, (v) => v.steps.some((s) => s.stepKey === 'ship' && s.status === 'running'));
    const lastSeq = async () =>
      (await sql<{ last_seq: number }>`SELECT last_seq FROM sous.execution WHERE id = ${executionId}`.execute(cp.db))
        .rows[0]?.last_seq;
    const seq = await lastSeq();
    const data = await gql<{
      compensationPlan: {
        status: string;
        compensations: { order: number; stepKey: string; capability: string; input: unknown; status: string }[];
      };
    }>(
      `query($id: ID!) { compensationPlan(execution: $id) { status
        compensations { order stepKey capability input status } } }`,
      { id: executionId },
    );
    assert.equal(data.compensationPlan.status, 'RUNNING');
    assert.deepEqual(data.compensationPlan.compensations, [
      { order: 1, stepKey: 'charge', capability: cap('refund'), input: { charge: 'ch-1' }, status: 'pending' },
      { order: 2, stepKey: 'reserve', capability: cap('release'), input: { reservation: 'res-S5' }, status: 'pending' },
    ]);
    assert.equal(await lastSeq(), seq, 'nothing appended');

    const cli = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join('src', 'cli', 'main.ts'), 'executions', 'compensation-plan', executionId, '--json'],
        {
          cwd: stackConfig.root,
          env: {
            ...process.env,
            SOUS_CONFIG: join(stackConfig.root, 'no-such-config.json'),
            SOUS_API_URL: url,
            SOUS_TOKEN: token,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    assert.equal(cli.code, 0, cli.stderr);
    const printed = JSON.parse(cli.stdout) as { compensations: { stepKey: string }[] };
    assert.deepEqual(
      printed.compensations.map((c) => c.stepKey),
      ['charge', 'reserve'],
    );
    await cp.cancelExecution(executionId);
    const none = await gql<{ compensationPlan: { compensations: unknown[] } }>(
      `query($id: ID!) { compensationPlan(execution: $id) { compensations { order } } }`,
      { id: executionId },
    );
    assert.deepEqual(none.compensationPlan.compensations, [], 'a finished execution undoes nothing');
  });
});
