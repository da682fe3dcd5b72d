// Readiness through dependency outages: a control plane and a worker report not ready
// while PostgreSQL, then the broker, is down, and ready again once each is back, while
// liveness answers throughout; and both stop while the broker is down, leaving nothing that
// dials it. The outages hit a small stack of this test's own (its own ports and folder, no
// Kafka Connect: readiness does not need it), never the shared one. Its ports lie below
// Linux's ephemeral range (32768–60999): a port in it can be taken as the source port of
// any outgoing connection, and the broker then cannot come back on it.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { controlPlaneInternals, createControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.js';
import { withTimeout } from '../../src/observability/with-timeout.js';
import { databaseUrl, kafkaBrokers, loadStackConfig, type StackConfig } from '../../src/stack/config.js';
import {
  migrateStack,
  resolveArtifacts,
  startKafka,
  startPostgres,
  stopKafka,
  stopPostgres,
} from '../../src/stack/stack.js';
import { createWorker, type Worker } from '../../src/worker/create-worker.js';
import { defineCapability } from '../../src/worker/index.js';

const stackDir = mkdtempSync(join(tmpdir(), 'sous-readiness-'));
// Run as root, the stack runs PostgreSQL as its own user, which must reach its data below.
chmodSync(stackDir, 0o755);
const config: StackConfig = loadStackConfig({
  SOUS_STACK_PROFILE: 'test',
  SOUS_STACK_DIR: stackDir,
  SOUS_PG_PORT: process.env.SOUS_READINESS_PG_PORT ?? '21432',
  SOUS_KAFKA_PORT: process.env.SOUS_READINESS_KAFKA_PORT ?? '21092',
  SOUS_KAFKA_CONTROLLER_PORT: process.env.SOUS_READINESS_KAFKA_CONTROLLER_PORT ?? '21093',
  SOUS_CONNECT_PORT: process.env.SOUS_READINESS_CONNECT_PORT ?? '21083',
  ...(process.env.SOUS_JAR_CACHE === undefined ? {} : { SOUS_JAR_CACHE: process.env.SOUS_JAR_CACHE }),
  ...(process.env.SOUS_PG_BINDIR === undefined ? {} : { SOUS_PG_BINDIR: process.env.SOUS_PG_BINDIR }),
});
const log = (line: string) => process.stderr.write(`[readiness stack] ${line}\n`);
const artifacts = resolveArtifacts(config, log);

// Undefined when `before` failed before making them: `after` still stops the stack.
let controlPlane: ControlPlane | undefined;
let worker: Worker | undefined;
let cpUrl: string;
let workerUrl: string;

interface ReadyBody {
  status: string;
  checks: Record<string, { ok: boolean; detail?: string }>;
}

async function readyz(base: string): Promise<{ status: number; body: ReadyBody }> {
  // Bounded: a probe that hangs must fail the test, not hold it for ever.
  const response = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: (await response.json()) as ReadyBody };
}

/** Polls /readyz until it says `ready` (and, when not ready, `failing` is among the failed checks). */
async function until(base: string, ready: boolean, failing?: string, timeoutMs = 120_000): Promise<ReadyBody> {
  const deadline = Date.now() + timeoutMs;
  let last: { status: number; body: ReadyBody } | undefined;
  for (;;) {
    last = await readyz(base);
    const matches = ready
      ? last.status === 200
      : last.status === 503 && (failing === undefined || last.body.checks[failing]?.ok === false);
    if (matches) return last.body;
    if (Date.now() > deadline) {
      throw new Error(
        `${base}/readyz never became ${ready ? 'ready' : `unready on ${failing}`}: ${JSON.stringify(last)}`,
      );
    }
    await sleep(250);
  }
}

async function live(base: string): Promise<number> {
  return (await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(10_000) })).status;
}

/** Resolves with how long `stop` took; rejects when it takes longer than `limitMs`. */
async function timedStop(what: string, stop: () => Promise<void>, limitMs: number): Promise<number> {
  const started = Date.now();
  await withTimeout(stop(), limitMs, `stopping ${what}`);
  return Date.now() - started;
}

before(
  async () => {
    await startPostgres(config, log);
    await migrateStack(config);
    await startKafka(config, artifacts, log);
    controlPlane = createControlPlane({
      databaseUrl: databaseUrl(config),
      brokers: kafkaBrokers(config),
      ingestDeadLetters: false,
      sampleGauges: false,
      processMetrics: false,
      metricsPort: 0,
      checkTimeoutMs: 1500,
    });
    await controlPlane.start();
    cpUrl = controlPlaneInternals(controlPlane).observability.probesUrl ?? '';
    worker = createWorker({
      brokers: kafkaBrokers(config),
      handleSignals: false,
      metricsPort: 0,
      processMetrics: false,
      checkTimeoutMs: 1500,
      capabilities: [
        defineCapability({ name: 'readiness.echo', input: z.unknown(), output: z.unknown(), handler: async (i) => i }),
      ],
    });
    await worker.start();
    workerUrl = worker.probesUrl ?? '';
  },
  { timeout: 300_000 },
);

after(
  async () => {
    // Bounded: a stop that hangs must not keep the stack (and CI) waiting.
    const w = worker;
    const cp = controlPlane;
    if (w !== undefined) await timedStop('the worker', () => w.stop(), 60_000).catch(() => undefined);
    if (cp !== undefined) await timedStop('the control plane', () => cp.stop(), 60_000).catch(() => undefined);
    await stopKafka(config).catch(() => undefined);
    try {
      stopPostgres(config, { immediate: true });
    } catch {
      // Already down.
    }
    rmSync(stackDir, { recursive: true, force: true });
  },
  { timeout: 240_000 },
);

describe('readiness', () => {
  it('is ready with every dependency up', async () => {
    const cp = await until(cpUrl, true);
    assert.deepEqual(Object.keys(cp.checks).sort(), ['consumers', 'kafka', 'migrations', 'postgres']);
    const w = await until(workerUrl, true);
    assert.deepEqual(Object.keys(w.checks).sort(), ['consumer', 'kafka']);
  });

  it('goes false while PostgreSQL is down and true again after, staying live', async () => {
    stopPostgres(config, { immediate: true });
    const down = await until(cpUrl, false, 'postgres', 30_000);
    assert.equal(down.checks.kafka?.ok, true, 'only PostgreSQL is reported down');
    assert.equal(await live(cpUrl), 200);
    // The worker does not use PostgreSQL: it stays ready.
    assert.equal((await readyz(workerUrl)).status, 200);
    await startPostgres(config, log);
    await until(cpUrl, true);
  });

  it('goes false while the broker is down and true again after, on the control plane and the worker', async () => {
    await stopKafka(config);
    const cp = await until(cpUrl, false, 'kafka', 60_000);
    assert.equal(cp.checks.postgres?.ok, true, 'PostgreSQL is still up');
    await until(workerUrl, false, 'kafka', 60_000);
    assert.equal(await live(cpUrl), 200);
    assert.equal(await live(workerUrl), 200);
    await startKafka(config, artifacts, log);
    // Consumers rejoin their groups (after the supervisor's back-off) before ready.
    const back = await until(cpUrl, true, undefined, 180_000);
    assert.equal(back.checks.consumers?.ok, true);
    const workerBack = await until(workerUrl, true, undefined, 180_000);
    assert.equal(workerBack.checks.consumer?.ok, true);
  });

  it('stops while the broker is down, and leaves nothing that dials it', async () => {
    const w = worker;
    const cp = controlPlane;
    assert.ok(w !== undefined && cp !== undefined);
    await stopKafka(config);
    await until(cpUrl, false, 'kafka', 60_000);
    await until(workerUrl, false, 'kafka', 60_000);
    // Long enough for the consumers to crash on the refused connections and be restarted.
    await sleep(5_000);
    // Within the worker's drain timeout (30 s), as an orchestrator's grace period expects;
    // its announcements and goodbye give up instead of retrying for minutes.
    const workerMs = await timedStop('the worker', () => w.stop(), 30_000);
    worker = undefined;
    const cpMs = await timedStop('the control plane', () => cp.stop(), 30_000);
    controlPlane = undefined;
    // What a stop began while the broker was down ends with its retries; anything left
    // running for good (kafkajs restarting a stopped consumer, every 30 s at most) keeps
    // dialing the broker, and keeps the process alive. Wait for 45 s without a dial.
    let lastDial = Date.now();
    let dials = 0;
    const listener = createServer((socket) => {
      dials += 1;
      lastDial = Date.now();
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(config.kafkaPort, '127.0.0.1', resolve);
    });
    const deadline = Date.now() + 180_000;
    try {
      while (Date.now() - lastDial < 45_000) {
        assert.ok(
          Date.now() < deadline,
          `a stopped worker or control plane still dials the broker (${dials} dial(s), the last ${Date.now() - lastDial} ms ago)`,
        );
        await sleep(1_000);
      }
    } finally {
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    }
    process.stderr.write(
      `[readiness] stopped while the broker was down: worker ${workerMs} ms, control plane ${cpMs} ms; ${dials} dial(s) after\n`,
    );
  });
});
