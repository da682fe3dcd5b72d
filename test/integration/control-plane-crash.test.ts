// Control-plane processes killed, doubled and loaded on the real stack.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { createControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.js';
import type { RecipePlan, RetryPolicy, TaskStep } from '../../src/recipe/plan.js';
import { databaseUrl, kafkaBrokers } from '../../src/stack/config.js';
import { waitForExecution } from '../helpers/control-plane.js';
import { stackConfig, testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, type TestWorker } from '../helpers/test-worker.js';

const kafka = testKafka();
const ns = uniqueName('crash').replaceAll('-', '');
const RETRY: RetryPolicy = {
  maxAttempts: 5,
  initialIntervalMs: 100,
  backoffCoefficient: 2,
  maxIntervalMs: 1000,
  jitter: 0,
  nonRetryableErrorCodes: [],
};
const capability = `test${ns}.work`;
const step = (id: string): TaskStep => ({
  id,
  type: 'task',
  capability,
  output: id,
  retry: RETRY,
  timeouts: {},
  input: { expression: `{"step": "${id}"}` },
});
const plan = (name: string, length: number): RecipePlan => ({
  name: `${ns}.${name}`,
  steps: Array.from({ length }, (_, i) => step(`s${i + 1}`)),
});

/** A control-plane process of its own, as production runs it. */
function spawnControlPlane(replyTopic: string, groupId: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join('scripts', 'control-plane.ts')], {
    cwd: stackConfig.root,
    env: {
      ...process.env,
      SOUS_DATABASE_URL: databaseUrl(stackConfig),
      SOUS_KAFKA_BROKERS: kafkaBrokers(stackConfig).join(','),
      SOUS_REPLY_TOPIC: replyTopic,
      SOUS_CONTROL_PLANE_GROUP: groupId,
      // Any free port: several control planes (or a developer's) may run on this host.
      SOUS_METRICS_PORT: '0',
      SOUS_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // Tracked at once, not when it is ready: one that never gets ready must be killed too, or
  // it keeps this file's process (and the whole test run) alive.
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('control plane ready')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`control plane exited with ${code}`)));
  });
}

async function kill(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL') {
  // A process ended by a signal keeps exitCode null: check both, or we would wait forever.
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

/** Attempts per step: more than one means a step was dispatched twice. */
async function attemptsPerStep(api: ControlPlane, executionIds: string[]) {
  const { rows } = await sql<{ execution_id: string; step_key: string; n: number }>`
    SELECT execution_id, step_key, count(*)::int AS n FROM sous.step_attempt
    WHERE execution_id = ANY(${executionIds}::uuid[]) GROUP BY execution_id, step_key`.execute(api.db);
  return rows;
}

let worker: TestWorker;
const children: ChildProcess[] = [];
before(async () => {
  worker = await startTestWorker(kafka, {
    [capability]: async (c) => {
      await sleep(20);
      return { output: { done: (c.input as { step: string }).step } };
    },
  });
});
after(async () => {
  await Promise.all(children.map((c) => kill(c)));
  await worker.stop();
});

/** An API-only client: starts executions, consumes nothing. */
function client(replyTopic: string): ControlPlane {
  return createControlPlane({
    databaseUrl: databaseUrl(stackConfig),
    brokers: kafkaBrokers(stackConfig),
    replyTopic,
    consume: false,
    migrate: false,
    poolSize: 4,
  });
}

describe('control plane under crashes and load', () => {
  it('resumes every execution after the control plane is SIGKILLed mid-run', async () => {
    const replyTopic = uniqueName('test.replies.kill');
    const groupId = uniqueName('test-cp-kill');
    const recipe = plan('kill', 6);
    const api = client(replyTopic);
    try {
      await api.registerRecipe(recipe);
      const first = await spawnControlPlane(replyTopic, groupId);
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push((await api.startExecution({ recipe: recipe.name })).executionId);
      // Let some steps happen, then kill the process in the middle of the stream.
      await waitForExecution(api, ids[0] ?? '', (v) => v.steps.filter((s) => s.status === 'completed').length >= 2);
      await kill(first);
      const progress = await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM sous.step WHERE execution_id = ANY(${ids}::uuid[]) AND status = 'completed'`.execute(
        api.db,
      );
      assert.ok((progress.rows[0]?.n ?? 0) < 120, 'killed before the run finished');
      const second = await spawnControlPlane(replyTopic, groupId);
      for (const id of ids) {
        const done = await waitForExecution(api, id, undefined, 90_000);
        assert.equal(done.status, 'completed');
        assert.equal(done.steps.length, 6);
      }
      for (const row of await attemptsPerStep(api, ids))
        assert.equal(row.n, 1, `${row.execution_id}/${row.step_key} dispatched once`);
      await kill(second, 'SIGTERM');
    } finally {
      await api.stop();
    }
  });

  it('two control-plane processes on one reply stream dispatch no step twice', async () => {
    const replyTopic = uniqueName('test.replies.two');
    const groupId = uniqueName('test-cp-two');
    const recipe = plan('two', 5);
    const api = client(replyTopic);
    try {
      await api.registerRecipe(recipe);
      const [a, b] = await Promise.all([
        spawnControlPlane(replyTopic, groupId),
        spawnControlPlane(replyTopic, groupId),
      ]);
      const ids = await Promise.all(
        Array.from({ length: 40 }, async () => (await api.startExecution({ recipe: recipe.name })).executionId),
      );
      for (const id of ids) assert.equal((await waitForExecution(api, id, undefined, 90_000)).status, 'completed');
      const rows = await attemptsPerStep(api, ids);
      assert.equal(rows.length, 40 * 5);
      for (const row of rows) assert.equal(row.n, 1, `${row.execution_id}/${row.step_key} dispatched once`);
      const perStep = new Map<string, number>();
      for (const c of worker.received.filter((c) => ids.includes(c.executionId))) {
        const k = `${c.executionId}/${c.stepId}`;
        perStep.set(k, (perStep.get(k) ?? 0) + 1);
      }
      assert.equal(perStep.size, 200);
      assert.ok(
        [...perStep.values()].every((n) => n === 1),
        'the worker received each command once',
      );
      await Promise.all([kill(a, 'SIGTERM'), kill(b, 'SIGTERM')]);
    } finally {
      await api.stop();
    }
  });

  it('completes 200 concurrent executions', async () => {
    const replyTopic = uniqueName('test.replies.load');
    const recipe = plan('load', 3);
    const cp = createControlPlane({
      databaseUrl: databaseUrl(stackConfig),
      brokers: kafkaBrokers(stackConfig),
      replyTopic,
      groupId: uniqueName('test-cp-load'),
      poolSize: 10,
    });
    await cp.start();
    try {
      await cp.registerRecipe(recipe);
      const started = performance.now();
      const ids = await Promise.all(
        Array.from({ length: 200 }, async () => (await cp.startExecution({ recipe: recipe.name })).executionId),
      );
      for (const id of ids) assert.equal((await waitForExecution(cp, id, undefined, 120_000)).status, 'completed');
      process.stdout.write(`# 200 executions × 3 steps completed in ${Math.round(performance.now() - started)} ms\n`);
    } finally {
      await cp.stop();
    }
  });
});
