// Metrics, health and the GraphQL backlog/timing views on the real stack, for a known
// workload: N executions of a two-step recipe, M that fail, and K whose capability has
// no worker (so their commands wait). Own recipes, topics, groups and capabilities.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/app.js';
import { createApiToken } from '../../src/api/auth.js';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import { commandTopic } from '../../src/protocol/messages.js';
import { parseRecipeYaml } from '../../src/recipe/parse-yaml.js';
import { databaseUrl } from '../../src/stack/config.js';
import { z } from 'zod';
import { createWorker } from '../../src/worker/create-worker.js';
import { defineCapability, terminalError, type Worker } from '../../src/worker/index.js';
import { startTestControlPlane, waitForExecution } from '../helpers/control-plane.js';
import { scrape, valueOf, type Sample } from '../helpers/prometheus.js';
import { stackConfig, testKafka, uniqueName } from '../helpers/stack.js';

const kafka = testKafka();
const ns = uniqueName('obs').replaceAll('-', '');
const cap = (name: string) => `test${ns}.${name}`;
const N = 5;
const M = 2;
const K = 3;
/** Partitions of a command topic (ensureTopics' default). */
const PARTITIONS = 6;

let cp: ControlPlane & { replyTopic: string };
let app: FastifyInstance;
let url: string;
let worker: Worker;
let token: string;
const cleanup: (() => Promise<unknown>)[] = [];
const finished: string[] = [];
const stuck: string[] = [];

async function gql<T>(query: string, variables: Record<string, unknown> = {}, auth = true): Promise<T> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data: T; errors?: unknown[] };
  if (response.status !== 200 || body.errors !== undefined) {
    throw Object.assign(new Error(`GraphQL ${response.status}: ${JSON.stringify(body.errors)}`), {
      status: response.status,
    });
  }
  return body.data;
}

before(async () => {
  // A control plane that does not sample on its own: the test samples when it wants to.
  // Static routing: the idle capability's commands must reach their topic with no shard serving it.
  cp = await startTestControlPlane({ sampleGauges: false, processMetrics: false, routing: 'static' });
  cleanup.push(() => cp.stop());
  app = await buildApi({ controlPlane: cp, databaseUrl: databaseUrl(stackConfig) });
  await app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  cleanup.push(() => app.close());
  token = (await createApiToken(cp.db, uniqueName('test-viewer'), 'viewer', 'observability.test')).token;
  worker = createWorker({
    kafka,
    groupId: uniqueName('test-obs-worker'),
    handleSignals: false,
    // Short commands reply once (no separate step.started), whatever the machine's load.
    startedReplyAfterMs: 60_000,
    metricsPort: 0,
    processMetrics: false,
    capabilities: [
      defineCapability({
        name: cap('ok'),
        input: z.unknown(),
        output: z.unknown(),
        handler: async (input) => ({ echoed: input }),
      }),
      defineCapability({
        name: cap('bad'),
        input: z.unknown(),
        output: z.unknown(),
        handler: async () => {
          throw terminalError('OBS_BAD', 'always fails');
        },
      }),
    ],
  });
  await worker.start();
  cleanup.push(() => worker.stop());
  // The idle capability's topic exists, but no worker consumes it.
  await ensureTopics(kafka, [commandTopic(cap('idle'))]);
  for (const [name, steps] of [
    ['good', [cap('ok'), cap('ok')]],
    ['bad', [cap('bad')]],
    ['idle', [cap('idle')]],
  ] as const) {
    await cp.registerRecipe(
      parseRecipeYaml(
        `name: ${ns}.${name}\nsteps:\n${steps.map((c, i) => `  - id: s${i}\n    capability: ${c}\n`).join('')}`,
      ),
    );
  }
  const start = (recipe: string) => cp.startExecution({ recipe: `${ns}.${recipe}`, input: {} });
  for (let i = 0; i < N; i++) finished.push((await start('good')).executionId);
  for (let i = 0; i < M; i++) finished.push((await start('bad')).executionId);
  for (let i = 0; i < K; i++) stuck.push((await start('idle')).executionId);
  for (const id of finished) await waitForExecution(cp, id);
});

after(async () => {
  for (const id of stuck) await cp.cancelExecution(id).catch(() => undefined);
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
});

describe('metrics', () => {
  let samples: Sample[];
  before(async () => {
    samples = await scrape(`${url}/metrics`);
  });

  it('count the steps of the workload by capability, once each', () => {
    const ok = { capability: cap('ok') };
    const bad = { capability: cap('bad') };
    const idle = { capability: cap('idle') };
    assert.equal(valueOf(samples, 'sous_steps_scheduled_total', ok), 2 * N);
    assert.equal(valueOf(samples, 'sous_steps_started_total', ok), 2 * N);
    assert.equal(valueOf(samples, 'sous_steps_completed_total', ok), 2 * N);
    assert.equal(valueOf(samples, 'sous_steps_failed_total', ok), undefined);
    assert.equal(valueOf(samples, 'sous_steps_scheduled_total', bad), M);
    assert.equal(valueOf(samples, 'sous_steps_failed_total', bad), M);
    assert.equal(valueOf(samples, 'sous_steps_completed_total', bad), undefined);
    assert.equal(valueOf(samples, 'sous_steps_scheduled_total', idle), K);
    assert.equal(valueOf(samples, 'sous_steps_started_total', idle), undefined);
  });

  it('time each finished step on its worker, by capability and outcome', () => {
    const okDone = { capability: cap('ok'), outcome: 'completed' };
    assert.equal(valueOf(samples, 'sous_step_duration_seconds_count', okDone), 2 * N);
    assert.equal(valueOf(samples, 'sous_step_duration_seconds_bucket', { ...okDone, le: '+Inf' }), 2 * N);
    const sum = valueOf(samples, 'sous_step_duration_seconds_sum', okDone) ?? -1;
    assert.ok(sum >= 0 && sum < 2 * N * 5, `plausible run time sum: ${sum}`);
    assert.equal(
      valueOf(samples, 'sous_step_duration_seconds_count', { capability: cap('bad'), outcome: 'failed' }),
      M,
    );
  });

  it('count decisions, their latency, replies per batch and executions', () => {
    const replies = 2 * N + M; // one reply per command (short commands)
    assert.equal(valueOf(samples, 'sous_decisions_total', { trigger: 'start' }), N + M + K);
    assert.equal(valueOf(samples, 'sous_decisions_total', { trigger: 'reply' }), replies);
    assert.equal(valueOf(samples, 'sous_replies_total', { outcome: 'applied' }), replies);
    assert.equal(valueOf(samples, 'sous_reply_batch_size_sum'), replies);
    const batches = valueOf(samples, 'sous_reply_batch_size_count') ?? 0;
    assert.ok(batches >= 1 && batches <= replies);
    assert.equal(valueOf(samples, 'sous_decision_duration_seconds_count', { trigger: 'reply' }), batches);
    assert.equal(valueOf(samples, 'sous_decision_duration_seconds_count', { trigger: 'start' }), N + M + K);
    assert.equal(valueOf(samples, 'sous_executions_started_total'), N + M + K);
    assert.equal(valueOf(samples, 'sous_executions_finished_total', { status: 'completed' }), N);
    assert.equal(valueOf(samples, 'sous_executions_finished_total', { status: 'failed' }), M);
  });

  it('sample backlog, waiting commands, outbox and executions from PostgreSQL and Kafka', async () => {
    const idle = { capability: cap('idle') };
    // The idle commands reach their topic through Debezium: wait until Kafka counts them.
    let sampled: Sample[] = [];
    const deadline = Date.now() + 60_000;
    // Lag is in offsets: the connector's exactly-once transactions add a commit marker
    // after its records, so K commands read as K to 2K.
    const lagOf = (samples: Sample[]) => valueOf(samples, 'sous_command_backlog', idle) ?? 0;
    while (lagOf(sampled) < K) {
      if (Date.now() > deadline) throw new Error(`backlog never reached ${K}`);
      await cp.observability.sampleNow();
      sampled = await scrape(`${url}/metrics`);
      await sleep(200);
    }
    assert.ok(lagOf(sampled) <= 2 * K);
    assert.equal(valueOf(sampled, 'sous_commands_waiting', idle), K);
    assert.ok((valueOf(sampled, 'sous_command_oldest_wait_seconds', idle) ?? 0) > 0);
    // The worked capability's group has read every command: what remains is at most one
    // trailing commit marker per partition (kafkajs commits past the last record, not past
    // the marker after it).
    const okLag = valueOf(sampled, 'sous_command_backlog', { capability: cap('ok') }) ?? -1;
    assert.ok(okLag >= 0 && okLag <= PARTITIONS, `lag ${okLag}`);
    assert.equal(valueOf(sampled, 'sous_commands_waiting', { capability: cap('ok') }), undefined);
    assert.ok((valueOf(sampled, 'sous_executions', { status: 'running' }) ?? 0) >= K);
    assert.equal(valueOf(sampled, 'sous_outbox_slot_active'), 1);
    assert.ok((valueOf(sampled, 'sous_outbox_slot_lag_bytes') ?? -1) >= 0);
    assert.ok((valueOf(sampled, 'sous_outbox_age_seconds') ?? -1) >= 0);
    assert.ok((valueOf(sampled, 'sous_timers_due') ?? -1) >= 0);
    assert.equal(valueOf(sampled, 'sous_sample_failures_total'), undefined, 'no sampled read failed');
    for (const source of ['executions', 'commands_waiting', 'outbox', 'dead_letters', 'timers', 'command_backlog']) {
      assert.ok((valueOf(sampled, 'sous_sample_last_success_timestamp_seconds', { source }) ?? 0) > 0, source);
    }
  });

  it("are served by the worker's metrics port too", async () => {
    assert.ok(worker.probesUrl !== undefined);
    const w = await scrape(`${worker.probesUrl}/metrics`);
    const ok = { capability: cap('ok'), outcome: 'completed' };
    assert.equal(valueOf(w, 'sous_worker_commands_finished_total', ok), 2 * N);
    assert.equal(valueOf(w, 'sous_worker_command_duration_seconds_count', ok), 2 * N);
    assert.equal(valueOf(w, 'sous_worker_commands_received_total', { capability: cap('ok') }), 2 * N);
    assert.equal(valueOf(w, 'sous_worker_commands_finished_total', { capability: cap('bad'), outcome: 'failed' }), M);
    assert.equal(valueOf(w, 'sous_worker_commands_in_flight'), 0);
  });

  it('carry no execution ids in any label', async () => {
    const all = [...(await scrape(`${url}/metrics`)), ...(await scrape(`${worker.probesUrl ?? ''}/metrics`))];
    for (const s of all) {
      for (const value of Object.values(s.labels)) {
        assert.ok(!/[0-9a-f]{8}-[0-9a-f]{4}-/.test(value), `${s.name} has an id-like label ${value}`);
      }
    }
  });
});

describe('health', () => {
  it('answers liveness and readiness on the API, the control plane and the worker', async () => {
    const live = await fetch(`${url}/healthz`);
    assert.equal(live.status, 200);
    assert.deepEqual(await live.json(), { status: 'ok' });
    const ready = await fetch(`${url}/readyz`);
    const body = (await ready.json()) as { status: string; checks: Record<string, { ok: boolean }> };
    assert.equal(ready.status, 200, JSON.stringify(body));
    assert.deepEqual(Object.keys(body.checks).sort(), ['consumers', 'kafka', 'migrations', 'postgres']);
    assert.ok(Object.values(body.checks).every((c) => c.ok));
    const workerReady = await fetch(`${worker.probesUrl ?? ''}/readyz`);
    const workerBody = (await workerReady.json()) as { checks: Record<string, { ok: boolean }> };
    assert.equal(workerReady.status, 200, JSON.stringify(workerBody));
    assert.deepEqual(Object.keys(workerBody.checks).sort(), ['consumer', 'kafka']);
    assert.equal((await fetch(`${worker.probesUrl ?? ''}/healthz`)).status, 200);
    assert.equal((await fetch(`${worker.probesUrl ?? ''}/nothing`)).status, 404);
  });
});

describe('GraphQL', () => {
  it('shows per-capability backlog and the oldest wait', async () => {
    const data = await gql<{
      capabilityBacklog: {
        capability: string;
        waiting: number;
        oldestWaitSeconds: number | null;
        oldestWaitingSince: string | null;
        consumerLag: number | null;
      }[];
    }>(
      `query($c: String) { capabilityBacklog(capability: $c) {
      capability waiting oldestWaitSeconds oldestWaitingSince consumerLag } }`,
      { c: cap('idle') },
    );
    assert.equal(data.capabilityBacklog.length, 1);
    const [row] = data.capabilityBacklog;
    assert.ok(row !== undefined);
    assert.equal(row.capability, cap('idle'));
    assert.equal(row.waiting, K);
    const lag = row.consumerLag ?? 0;
    assert.ok(lag >= K && lag <= 2 * K, `lag ${lag}`);
    assert.ok((row.oldestWaitSeconds ?? 0) > 0);
    assert.ok(Date.parse(row.oldestWaitingSince ?? '') < Date.now());
    const all = await gql<{ capabilityBacklog: { capability: string; waiting: number; consumerLag: number }[] }>(
      '{ capabilityBacklog { capability waiting consumerLag } }',
    );
    const ok = all.capabilityBacklog.find((r) => r.capability === cap('ok'));
    assert.ok(ok !== undefined);
    assert.equal(ok.waiting, 0);
    assert.ok(ok.consumerLag >= 0 && ok.consumerLag <= PARTITIONS);
  });

  it('needs a token like every query', async () => {
    await assert.rejects(gql('{ capabilityBacklog { capability } }', {}, false), { status: 401 });
  });

  it("shows how long each step waited to start and ran, and a waiting step's wait so far", async () => {
    type Timing = {
      attempt: number;
      waitSeconds: number | null;
      runSeconds: number | null;
      waiting: boolean;
      running: boolean;
    };
    const query = `query($id: ID!) { execution(id: $id) { status steps { key timing { attempt waitSeconds runSeconds waiting running }
      attempts { waitSeconds runSeconds } } } }`;
    const done = await gql<{
      execution: { steps: { key: string; timing: Timing; attempts: { waitSeconds: number; runSeconds: number }[] }[] };
    }>(query, { id: finished[0] });
    assert.equal(done.execution.steps.length, 2);
    for (const step of done.execution.steps) {
      assert.equal(step.timing.attempt, 1);
      assert.equal(step.timing.waiting, false);
      assert.equal(step.timing.running, false);
      assert.ok((step.timing.waitSeconds ?? -1) >= 0 && (step.timing.waitSeconds ?? 99) < 60, JSON.stringify(step));
      assert.ok((step.timing.runSeconds ?? -1) >= 0 && (step.timing.runSeconds ?? 99) < 10, JSON.stringify(step));
      const first = step.attempts.at(0);
      assert.ok(first !== undefined);
      assert.equal(first.waitSeconds, step.timing.waitSeconds);
      assert.equal(first.runSeconds, step.timing.runSeconds);
    }
    const waiting = await gql<{ execution: { steps: { timing: Timing }[] } }>(query, { id: stuck[0] });
    const [step] = waiting.execution.steps;
    assert.ok(step !== undefined);
    assert.equal(step.timing.waiting, true);
    assert.equal(step.timing.running, false);
    assert.equal(step.timing.runSeconds, null);
    assert.ok((step.timing.waitSeconds ?? 0) > 0);
  });
});
