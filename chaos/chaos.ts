// The chaos run: executions of every construct (chaos/workload.ts), kept near saturation by a
// closed loop that starts a new one whenever one ends, while faults land one after another:
// SIGKILLs of workers, of either of two control planes, of Kafka Connect and of the broker,
// PostgreSQL crashes, and the broker made unreachable on loopback (chaos/faults.ts). Then
// every invariant (chaos/invariants.ts). `npm run chaos` runs the full form,
// test/integration/chaos.test.ts a short one.
import { mkdirSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import { createControlPlane, type ControlPlane } from '../src/control-plane/control-plane.js';
import { createDatabase } from '../src/db/database.js';
import type { Database } from '../src/db/schema.js';
import { ensureTopics } from '../src/kafka/topics.js';
import { createKafka } from '../src/kafka/kafka-client.js';
import { commandTopic } from '../src/protocol/messages.js';
import { resolveArtifacts } from '../src/stack/artifacts.js';
import { CONTROL_PLANE_NODE_ARGS, NodeChild } from '../scripts/node-child.js';
import { connectUrl, databaseUrl, kafkaBrokers, type StackConfig } from '../src/stack/config.js';
import { ALL_FAULTS, FaultInjector, startSupervised, type Fault, type InjectedFault } from './faults.js';
import { checkInvariants, type InvariantFigures, type StartedExecution } from './invariants.js';
import { LoopbackBlock, loopbackBlockUnavailable, removeLeftoverBlocks } from './loopback-block.js';
import { CHAOS_SIGNAL, chaosWorkload, type WorkloadRecipe } from './workload.js';

export { ALL_FAULTS, type Fault } from './faults.js';

export interface ChaosOptions {
  readonly stack: StackConfig;
  /** Executions started at least (more when the faults outlast them). @default 2000 */
  readonly executions?: number;
  /** Faults injected; every kind in `faultKinds` at least once when there are enough. @default 50 */
  readonly faults?: number;
  /** The kinds of fault. @default all six */
  readonly faultKinds?: readonly Fault[];
  /** Executions kept running at once by the closed loop: enough to keep the engine saturated. @default 200 */
  readonly inFlight?: number;
  /** Items of the forEach recipe. @default 20 */
  readonly forEachItems?: number;
  /** Control planes running (each may be SIGKILLed). @default 2 */
  readonly controlPlanes?: number;
  /** Worker processes serving the steps. @default 2 */
  readonly workers?: number;
  /** Pause between the starts of two faults, drawn in [min, max) ms. @default [2000, 6000] */
  readonly faultGapMs?: readonly [number, number];
  /** Give up waiting for every execution to end after this long. @default 900000 */
  readonly timeoutMs?: number;
  readonly log?: (line: string) => void;
}

export interface ChaosReport extends InvariantFigures {
  readonly executions: number;
  readonly faults: readonly InjectedFault[];
  /** Side effects applied per second from the first start to the last end. */
  readonly effectsPerSecond: number;
  /** The most executions running at once. */
  readonly peakOpen: number;
  readonly durationMs: number;
  /** Every invariant held. */
  readonly ok: boolean;
  readonly problems: string[];
}

/** Retries an operation through outages (PostgreSQL restarting, a broker down). */
async function persist<T>(what: string, fn: () => Promise<T>, timeoutMs = 180_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what} kept failing`, { cause: error });
      await sleep(500);
    }
  }
}

/**
 * The fault to inject next: one of the kinds injected least so far, so every kind gets its
 * share; undefined while all of those are busy (the caller waits rather than substitute a
 * kind that is up more often, such as PostgreSQL, which restarts in 2 s).
 */
function nextFault(
  kinds: readonly Fault[],
  available: readonly Fault[],
  started: ReadonlyMap<Fault, number>,
): Fault | undefined {
  const count = (f: Fault) => started.get(f) ?? 0;
  const least = Math.min(...kinds.map(count));
  const candidates = kinds.filter((f) => count(f) === least && available.includes(f));
  return candidates.length === 0 ? undefined : candidates[randomInt(candidates.length)];
}

/** Runs the chaos workload and checks the invariants; never throws for a broken invariant (see `ok`). */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const config = options.stack;
  const total = options.executions ?? 2000;
  const faultCount = options.faults ?? 50;
  const faultKinds = options.faultKinds ?? ALL_FAULTS;
  const inFlight = options.inFlight ?? 200;
  const [gapMin, gapMax] = options.faultGapMs ?? [2000, 6000];
  const timeoutMs = options.timeoutMs ?? 900_000;
  const run = Date.now().toString(36) + randomInt(1000).toString(36);
  const capability = `chaos${run}.step`;
  const effectTable = `chaos_effect_${run}`;
  const url = databaseUrl(config);
  const brokers = kafkaBrokers(config).join(',');
  const stackLog = (line: string) => log(`  [stack] ${line}`);
  const logDir = join(config.stackDir, '..', 'chaos', run);
  mkdirSync(logDir, { recursive: true });

  let brokerBlock: LoopbackBlock | undefined;
  if (faultKinds.includes('network')) {
    const unavailable = loopbackBlockUnavailable();
    if (unavailable !== undefined) throw new Error(unavailable);
    const removed = removeLeftoverBlocks(config.kafkaPort);
    if (removed > 0) log(`  removed ${removed} loopback block(s) an earlier chaos run left`);
    brokerBlock = new LoopbackBlock(config.kafkaPort, run);
  }

  const workload = chaosWorkload(run, capability, options.forEachItems ?? 20);
  const replyTopic = `sous.chaos.replies.${run}`;
  const controlPlanes = Array.from(
    { length: options.controlPlanes ?? 2 },
    (_, i) =>
      new NodeChild(
        `control plane ${i + 1}`,
        'scripts/control-plane.ts',
        {
          SOUS_DATABASE_URL: url,
          SOUS_KAFKA_BROKERS: brokers,
          SOUS_REPLY_TOPIC: replyTopic,
          // One group: the control planes share the reply partitions, and take over a dead one's.
          SOUS_CONTROL_PLANE_GROUP: `sous-chaos-cp-${run}`,
          // Any free port: several control planes (or a developer's) may run on this host.
          SOUS_METRICS_PORT: '0',
          // Debezium ends FAILED when PostgreSQL restarts under it; the control planes restart it.
          SOUS_CONNECT_URL: connectUrl(config),
        },
        'control plane ready',
        join(logDir, `control-plane-${i + 1}.log`),
        CONTROL_PLANE_NODE_ARGS,
      ),
  );
  const workers = Array.from(
    { length: options.workers ?? 2 },
    (_, i) =>
      new NodeChild(
        `worker ${i + 1}`,
        'chaos/worker.ts',
        {
          CHAOS_BROKERS: brokers,
          CHAOS_DATABASE_URL: url,
          CHAOS_CAPABILITY: capability,
          CHAOS_GROUP: `sous-chaos-workers-${run}`,
          CHAOS_TABLE: effectTable,
        },
        'worker ready',
        join(logDir, `worker-${i + 1}.log`),
      ),
  );
  const db: Kysely<Database> = createDatabase({ connectionString: url, poolSize: 4, applicationName: 'sous-chaos' });
  // An API-side control plane: starts executions and sends signals, consumes nothing. Its
  // starts go straight to the command topic; it keeps no registry consumer in this process
  // (a kafkajs consumer restarted by the broker faults can outlive stop()).
  const starter: ControlPlane = createControlPlane({
    databaseUrl: url,
    brokers: kafkaBrokers(config),
    consume: false,
    replyTopic,
    routing: 'static',
  });
  const stopProcesses = async () => {
    brokerBlock?.unblock();
    await Promise.all([...controlPlanes.map((cp) => cp.stop()), ...workers.map((w) => w.stop())]);
  };
  await starter.start();
  try {
    await sql`CREATE SCHEMA IF NOT EXISTS sous_worker`.execute(db);
    await sql`CREATE TABLE ${sql.table(`sous_worker.${effectTable}`)} (idempotency_key text NOT NULL, execution_id uuid NOT NULL)`.execute(
      db,
    );
    const kafka = createKafka({ brokers: kafkaBrokers(config), clientId: `sous-chaos-${run}` });
    await ensureTopics(kafka, [commandTopic(capability)]);
    for (const w of workload) await starter.registerRecipe(w.plan);

    for (const cp of controlPlanes) await startSupervised(cp, log);
    await Promise.all(workers.map((w) => startSupervised(w, log)));
  } catch (error) {
    // A setup that failed leaves nothing running behind it.
    await stopProcesses();
    await starter.stop();
    await db.destroy();
    throw error;
  }
  const begin = Date.now();
  const artifacts = resolveArtifacts(config, stackLog);
  const injector = new FaultInjector(
    {
      stack: config,
      artifacts,
      workers,
      controlPlanes,
      stackLog,
      ...(brokerBlock === undefined ? {} : { brokerBlock }),
    },
    begin,
    log,
  );
  log(
    `chaos ${run}: at least ${total} executions (${workload.map((w) => w.kind).join(', ')}), ${inFlight} at once; ` +
      `${faultCount} faults of ${faultKinds.join(', ')}; logs in ${logDir}`,
  );

  const started: StartedExecution[] = [];
  const problems: string[] = [];
  // Read by the loading loop, set when the last fault is undone.
  const progress = { faultsDone: false, abandoned: false };
  let peakOpen = 0;
  const openCount = () =>
    persist('count open executions', async () => {
      const { rows } = await sql<{ n: string }>`
        SELECT count(*) AS n FROM sous.execution
        WHERE recipe_name LIKE ${`chaos.${run}.%`} AND status NOT IN ('completed', 'failed', 'cancelled', 'timed_out')`.execute(
        db,
      );
      return Number(rows[0]?.n ?? 0);
    });

  // The closed loop: whenever fewer than `inFlight` run, start more (retried with the same
  // idempotency keys through outages, so never twice), until enough have started and the
  // last fault is undone. A signal execution gets its signal at once: it waits buffered
  // until the step begins.
  const startSome = async (n: number) => {
    const batch = Array.from({ length: n }, (_, k) => {
      const index = started.length + k;
      const w = workload[index % workload.length] as WorkloadRecipe;
      return { w, start: { recipe: w.plan.name, input: w.input(index), idempotencyKey: `chaos-${run}-${index}` } };
    });
    const ids = await persist('start executions', () => starter.startExecutions(batch.map((b) => b.start)));
    for (const [k, b] of batch.entries()) {
      const executionId = ids[k]?.executionId;
      if (executionId === undefined) throw new Error('startExecutions returned fewer results than starts');
      started.push({ executionId, kind: b.w.kind });
      if (b.w.kind === 'signal') {
        await persist(`signal ${executionId}`, () =>
          starter.signalExecution(executionId, CHAOS_SIGNAL, { by: 'chaos' }),
        );
      }
    }
  };
  const loading = (async () => {
    while ((started.length < total || !progress.faultsDone) && !progress.abandoned) {
      const open = await openCount();
      peakOpen = Math.max(peakOpen, open);
      if (open < inFlight) await startSome(Math.min(inFlight - open, 100));
      await sleep(250);
    }
  })();
  // Awaited below; until then a failure must not be an unhandled rejection.
  loading.catch(() => undefined);

  try {
    try {
      // Faults started per kind (a fault is counted when it starts, not when it is undone).
      const startedKinds = new Map<Fault, number>();
      for (let k = 0; k < faultCount; k++) {
        await sleep(randomInt(gapMin, gapMax));
        const choose = () => nextFault(faultKinds, injector.available(faultKinds), startedKinds);
        let fault = choose();
        while (fault === undefined) {
          await sleep(500);
          fault = choose();
        }
        startedKinds.set(fault, (startedKinds.get(fault) ?? 0) + 1);
        injector.start(fault);
      }
    } finally {
      await injector.settle();
      progress.faultsDone = true;
    }
    await loading;
    log(
      `  ${started.length} executions started, ${faultCount} faults undone after ${((Date.now() - begin) / 1000).toFixed(1)} s; waiting for the rest to end`,
    );
    const deadline = Date.now() + timeoutMs;
    while ((await openCount()) > 0 && Date.now() < deadline) await sleep(1000);
  } catch (error) {
    // A fault that could not be undone: stop everything so the error reaches the caller.
    progress.abandoned = true;
    await loading.catch(() => undefined);
    await starter.stop();
    await db.destroy();
    throw error;
  } finally {
    await stopProcesses();
  }
  const durationMs = Date.now() - begin;

  const figures = await checkInvariants(db, starter.environment.plans, workload, started, effectTable, run, problems);
  const kinds = new Set(injector.injected.map((f) => f.fault));
  const missing = faultKinds.filter((f) => !kinds.has(f));
  if (faultCount >= faultKinds.length && missing.length > 0)
    problems.push(`faults never injected: ${missing.join(', ')}`);
  await starter.stop();
  await db.destroy();
  return {
    ...figures,
    executions: started.length,
    faults: injector.injected,
    effectsPerSecond: figures.effects / (durationMs / 1000),
    peakOpen,
    durationMs,
    ok: problems.length === 0,
    problems,
  };
}
