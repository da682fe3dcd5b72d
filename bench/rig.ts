// The processes of one bench run: a control plane and a worker, each in a child process of
// its own (so /proc gives each its own CPU and memory), and a starter in the bench process
// that registers recipes and starts executions as a role of its own (bench/probe.ts).
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createControlPlane, type ControlPlane } from '../src/control-plane/control-plane.js';
import { connectPid } from '../src/stack/connect.js';
import { kafkaBrokers, type StackConfig } from '../src/stack/config.js';
import { kafkaPid } from '../src/stack/kafka.js';
import { postgresPid } from '../src/stack/postgres.js';
import { CONTROL_PLANE_NODE_ARGS, NodeChild } from '../scripts/node-child.js';
import { STARTER_ROLE } from './probe.js';
import type { Processes } from './proc.js';

/** `<executionId>/<stepKey>` → epoch ms at the worker. */
export interface WorkerTimes {
  readonly received: ReadonlyMap<string, number>;
  readonly handled: ReadonlyMap<string, number>;
}

export interface Rig {
  readonly tag: string;
  readonly starter: ControlPlane;
  readonly capability: string;
  readonly processes: Processes;
  readonly controlPlanePid: number | undefined;
  /** Stops everything; returns when the worker got and finished each command. */
  stop(): Promise<WorkerTimes>;
}

const session = Date.now().toString(36);
/** A busy machine can take a minute to start a tsx process and join a consumer group. */
const START_TIMEOUT_MS = 180_000;
let rigs = 0;

export interface RigOptions {
  readonly config: StackConfig;
  readonly name: string;
  readonly slowMs: number;
  readonly workerConcurrency: number;
  /** Whether the worker notes when each command arrived and was handled (stop() returns them). @default true */
  readonly recordTimes?: boolean;
}

/** A control plane, a worker and a starter, on topics, groups and a capability of their own. */
export async function startRig({
  config,
  name,
  slowMs,
  workerConcurrency,
  recordTimes = true,
}: RigOptions): Promise<Rig> {
  const tag = `${session}-${name}-${++rigs}`;
  const replyTopic = `sous.bench.replies.${tag}`;
  const capability = `bench${tag.replace(/[^a-z0-9]/g, '')}.step`;
  const logs = join(config.root, '.cache', 'bench', 'logs');
  mkdirSync(logs, { recursive: true });
  const databaseUrl = (user: string) => `postgres://${user}@127.0.0.1:${config.pgPort}/${config.pgDatabase}`;
  const brokers = kafkaBrokers(config).join(',');

  const controlPlane = new NodeChild(
    'control plane',
    'scripts/control-plane.ts',
    {
      SOUS_DATABASE_URL: databaseUrl(config.pgUser),
      SOUS_KAFKA_BROKERS: brokers,
      SOUS_REPLY_TOPIC: replyTopic,
      SOUS_CONTROL_PLANE_GROUP: `sous-bench-cp-${tag}`,
      // Any free port: several control planes (or a developer's) may run on this host.
      SOUS_METRICS_PORT: '0',
    },
    'control plane ready',
    join(logs, `control-plane-${tag}.log`),
    CONTROL_PLANE_NODE_ARGS,
  );
  const receivedFile = join(logs, `received-${tag}.json`);
  const worker = new NodeChild(
    'worker',
    'bench/worker-child.ts',
    {
      BENCH_BROKERS: brokers,
      BENCH_CAPABILITY: capability,
      BENCH_WORKER_GROUP: `sous-bench-worker-${tag}`,
      BENCH_RECEIVED_FILE: receivedFile,
      BENCH_SLOW_MS: String(slowMs),
      BENCH_WORKER_CONCURRENCY: String(workerConcurrency),
      BENCH_RECORD_TIMES: recordTimes ? '1' : '0',
    },
    'worker ready',
    join(logs, `worker-${tag}.log`),
  );
  // The control plane creates the reply topic, the worker its command topic.
  await controlPlane.start(START_TIMEOUT_MS);
  const starter = createControlPlane({
    databaseUrl: databaseUrl(STARTER_ROLE),
    brokers: kafkaBrokers(config),
    replyTopic,
    consume: false,
    migrate: false, // the bench migrated as sous; this role must create nothing
    poolSize: 4,
    // Routed as the control plane child is (SOUS_ROUTING), so an A/B of routing covers every step.
    ...(process.env.SOUS_ROUTING === 'static' ? { routing: 'static' as const } : {}),
  });
  try {
    await starter.start();
    await worker.start(START_TIMEOUT_MS);
  } catch (error) {
    await worker.stop();
    await controlPlane.stop();
    await starter.stop();
    throw error;
  }
  return {
    tag,
    starter,
    capability,
    controlPlanePid: controlPlane.pid,
    processes: {
      controlPlane: controlPlane.pid,
      worker: worker.pid,
      postgres: postgresPid(config),
      kafka: kafkaPid(config),
      connect: connectPid(config),
    },
    async stop() {
      await worker.stop();
      await controlPlane.stop();
      await starter.stop();
      if (!existsSync(receivedFile)) return { received: new Map(), handled: new Map() };
      const times = JSON.parse(readFileSync(receivedFile, 'utf8')) as Record<
        'received' | 'handled',
        Record<string, number>
      >;
      rmSync(receivedFile, { force: true });
      return { received: new Map(Object.entries(times.received)), handled: new Map(Object.entries(times.handled)) };
    },
  };
}
