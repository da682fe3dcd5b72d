// The chaos run: executions whose steps apply side effects exactly once, while a worker,
// the control plane, Kafka Connect and the Kafka broker are SIGKILLed and PostgreSQL is
// restarted at random moments; then the invariants are checked. `npm run chaos` runs the
// full form, test/integration/chaos.test.ts a short one.
import { mkdirSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import { createControlPlane, type ControlPlane } from '../src/control-plane/control-plane.js';
import { verifyExecution } from '../src/control-plane/verify.js';
import { createDatabase } from '../src/db/database.js';
import type { Database } from '../src/db/schema.js';
import { ensureTopics } from '../src/kafka/topics.js';
import { createKafka } from '../src/kafka/kafka-client.js';
import { commandTopic } from '../src/protocol/messages.js';
import { recipe } from '../src/recipe/builder.js';
import { resolveArtifacts } from '../src/stack/artifacts.js';
import { CONTROL_PLANE_NODE_ARGS, NodeChild } from '../scripts/node-child.js';
import { connectUrl, databaseUrl, kafkaBrokers, type StackConfig } from '../src/stack/config.js';
import { startConnect, stopConnect } from '../src/stack/connect.js';
import { startKafka, stopKafka } from '../src/stack/kafka.js';
import { startPostgres, stopPostgres } from '../src/stack/postgres.js';

export type Fault = 'worker' | 'control-plane' | 'connect' | 'broker' | 'postgres';
export const ALL_FAULTS: readonly Fault[] = ['worker', 'control-plane', 'connect', 'broker', 'postgres'];

export interface ChaosOptions {
  readonly stack: StackConfig;
  /** Executions started. @default 500 */
  readonly executions?: number;
  /** Steps per execution (each one side effect). @default 3 */
  readonly steps?: number;
  /** Faults injected, each once, in random order at random moments. @default all five */
  readonly faults?: readonly Fault[];
  /** Give up waiting for every execution to end after this long. @default 600000 */
  readonly timeoutMs?: number;
  /** Seed-free randomness is fine: every fault happens; only its moment varies. */
  readonly log?: (line: string) => void;
}

export interface ChaosReport {
  readonly executions: number;
  readonly completed: number;
  readonly notTerminal: number;
  readonly otherTerminal: Record<string, number>;
  readonly effects: number;
  readonly expectedEffects: number;
  readonly duplicatedEffects: number;
  readonly outboxRows: number;
  readonly slotLagBytes: number | null;
  readonly disagreements: number;
  readonly faults: { fault: Fault; atMs: number; downMs: number }[];
  readonly durationMs: number;
  /** Every invariant held. */
  readonly ok: boolean;
  readonly problems: string[];
}

/** Retries an operation through outages (PostgreSQL restarting, a broker down). */
async function persist<T>(what: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
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

/** Runs the chaos workload and checks the invariants; never throws for a broken invariant (see `ok`). */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const config = options.stack;
  const total = options.executions ?? 500;
  const steps = options.steps ?? 3;
  const faults = [...(options.faults ?? ALL_FAULTS)].sort(() => randomInt(3) - 1);
  const timeoutMs = options.timeoutMs ?? 600_000;
  const run = Date.now().toString(36) + randomInt(1000).toString(36);
  const capability = `chaos${run}.step`;
  const table = `chaos_effect_${run}`;
  const url = databaseUrl(config);
  const brokers = kafkaBrokers(config).join(',');
  const stackLog = (line: string) => log(`  [stack] ${line}`);
  const artifacts = resolveArtifacts(config, stackLog);
  const begin = Date.now();
  const logDir = join(config.stackDir, '..', 'chaos', run);
  mkdirSync(logDir, { recursive: true });

  const db: Kysely<Database> = createDatabase({ connectionString: url, poolSize: 4, applicationName: 'sous-chaos' });
  // An API-side control plane: starts executions, consumes nothing.
  const replyTopic = `sous.chaos.replies.${run}`;
  // Executions reply where the starting process says: the control plane's reply topic.
  const starter: ControlPlane = createControlPlane({
    databaseUrl: url,
    brokers: kafkaBrokers(config),
    consume: false,
    replyTopic,
    // Its starts go straight to the command topic (the workers come and go with the
    // faults; the consuming control plane routes the later steps by the registry). It
    // keeps no registry consumer in this process: a kafkajs consumer restarted by the
    // broker faults can outlive stop() and keep the test's process alive.
    routing: 'static',
  });
  await starter.start();
  await sql`CREATE SCHEMA IF NOT EXISTS sous_worker`.execute(db);
  await sql`CREATE TABLE ${sql.table(`sous_worker.${table}`)} (idempotency_key text NOT NULL, execution_id uuid NOT NULL)`.execute(
    db,
  );
  const kafka = createKafka({ brokers: kafkaBrokers(config), clientId: `sous-chaos-${run}` });
  await ensureTopics(kafka, [commandTopic(capability)]);

  let builder = recipe(`chaos.${run}`);
  for (let i = 1; i <= steps; i++) {
    builder = builder.task(`s${i}`, capability, {
      input: { n: i === 1 ? 'input.n' : `outputs.s${i - 1}.n` },
      retry: { maxAttempts: 20, initialInterval: '500ms', maxInterval: '5s' },
      timeouts: { startToClose: '60s' },
    });
  }
  const plan = builder.build();
  await starter.registerRecipe(plan);

  const controlPlane = new NodeChild(
    'control plane',
    'scripts/control-plane.ts',
    {
      SOUS_DATABASE_URL: url,
      SOUS_KAFKA_BROKERS: brokers,
      SOUS_REPLY_TOPIC: replyTopic,
      SOUS_CONTROL_PLANE_GROUP: `sous-chaos-cp-${run}`,
      // Any free port: several control planes (or a developer's) may run on this host.
      SOUS_METRICS_PORT: '0',
      // Debezium ends FAILED when PostgreSQL restarts under it; the control plane restarts it.
      SOUS_CONNECT_URL: connectUrl(config),
    },
    'control plane ready',
    join(logDir, 'control-plane.log'),
    CONTROL_PLANE_NODE_ARGS,
  );
  const worker = (n: number) =>
    new NodeChild(
      `worker ${n}`,
      'chaos/worker.ts',
      {
        CHAOS_BROKERS: brokers,
        CHAOS_DATABASE_URL: url,
        CHAOS_CAPABILITY: capability,
        CHAOS_GROUP: `sous-chaos-workers-${run}`,
        CHAOS_TABLE: table,
      },
      'worker ready',
      join(logDir, `worker-${n}.log`),
    );
  const workers = [worker(1), worker(2)];
  await controlPlane.start();
  await Promise.all(workers.map((w) => w.start()));
  log(`chaos ${run}: ${total} executions × ${steps} steps; faults: ${faults.join(', ')}; logs in ${logDir}`);

  // Start executions at a steady pace over the whole fault schedule, so every fault lands
  // while work is in flight. A start that fails in an outage is retried with the same
  // idempotency key: never twice.
  const windowMs = faults.length * 20_000;
  const paceMs = Math.max(5, Math.floor(windowMs / total));
  const ids: string[] = [];
  const starting = (async () => {
    for (let i = 0; i < total; i++) {
      const key = `chaos-${run}-${i}`;
      const started = await persist(`start ${key}`, () =>
        starter.startExecution({ recipe: plan.name, input: { n: 0 }, idempotencyKey: key }),
      );
      ids.push(started.executionId);
      await sleep(paceMs);
    }
  })();

  const injected: ChaosReport['faults'] = [];
  const inject = async (fault: Fault) => {
    const at = Date.now() - begin;
    const down = Date.now();
    log(`  ✗ ${fault} at ${(at / 1000).toFixed(1)} s`);
    switch (fault) {
      case 'worker': {
        const victim = workers[randomInt(workers.length)] ?? workers[0];
        if (victim === undefined) break;
        await victim.kill();
        await sleep(randomInt(500, 3000));
        await victim.start();
        break;
      }
      case 'control-plane':
        await controlPlane.kill();
        await sleep(randomInt(500, 3000));
        await controlPlane.start();
        break;
      case 'connect':
        await stopConnect(config, 'SIGKILL');
        await sleep(randomInt(500, 3000));
        await startConnect(config, artifacts, stackLog);
        break;
      case 'broker':
        await stopKafka(config, 'SIGKILL');
        await sleep(randomInt(500, 3000));
        await startKafka(config, artifacts, stackLog);
        break;
      case 'postgres':
        // An immediate shutdown is a crash for PostgreSQL: it recovers from its WAL.
        stopPostgres(config, { immediate: true });
        await sleep(randomInt(500, 2000));
        await startPostgres(config, stackLog);
        break;
    }
    injected.push({ fault, atMs: at, downMs: Date.now() - down });
    log(`  ✓ ${fault} back after ${((Date.now() - down) / 1000).toFixed(1)} s`);
  };

  const problems: string[] = [];
  try {
    for (const fault of faults) {
      await sleep(randomInt(1000, 6000));
      await inject(fault);
    }
    await starting;
    log(
      `  all ${total} executions started after ${((Date.now() - begin) / 1000).toFixed(1)} s; waiting for them to end`,
    );

    const deadline = Date.now() + timeoutMs;
    let open = total;
    while (open > 0 && Date.now() < deadline) {
      await sleep(1000);
      open = await persist('count open executions', async () => {
        const { rows } = await sql<{ n: string }>`
          SELECT count(*) AS n FROM sous.execution
          WHERE recipe_name = ${plan.name} AND status NOT IN ('completed', 'failed', 'cancelled')`.execute(db);
        return Number(rows[0]?.n ?? 0);
      });
    }
  } finally {
    await Promise.all([controlPlane.stop(), ...workers.map((w) => w.stop())]);
  }

  // ---- invariants ---------------------------------------------------------------------
  const statuses = await sql<{ status: string; n: string }>`
    SELECT status, count(*) AS n FROM sous.execution WHERE recipe_name = ${plan.name} GROUP BY status`.execute(db);
  const byStatus = Object.fromEntries(statuses.rows.map((r) => [r.status, Number(r.n)]));
  const counted = Object.values(byStatus).reduce((a, b) => a + b, 0);
  const completed = byStatus.completed ?? 0;
  const notTerminal = counted - completed - (byStatus.failed ?? 0) - (byStatus.cancelled ?? 0);
  const { completed: _c, ...otherTerminal } = byStatus;
  if (counted !== total) problems.push(`${counted} executions exist, ${total} were started`);
  if (completed !== total)
    problems.push(`${total - completed} executions did not complete: ${JSON.stringify(byStatus)}`);

  const effects = await sql<{ effects: string; duplicated: string }>`
    SELECT count(*) AS effects,
      count(*) - count(DISTINCT idempotency_key) AS duplicated
    FROM ${sql.table(`sous_worker.${table}`)}`.execute(db);
  const effectCount = Number(effects.rows[0]?.effects ?? 0);
  const duplicatedEffects = Number(effects.rows[0]?.duplicated ?? 0);
  if (duplicatedEffects > 0) problems.push(`${duplicatedEffects} side effects were applied twice`);
  if (effectCount - duplicatedEffects !== total * steps) {
    problems.push(`${effectCount - duplicatedEffects} distinct side effects, ${total * steps} expected`);
  }

  const outbox = await sql<{ n: string }>`SELECT count(*) AS n FROM sous.outbox`.execute(db);
  const outboxRows = Number(outbox.rows[0]?.n ?? 0);
  if (outboxRows > 0) problems.push(`${outboxRows} rows left in sous.outbox`);

  // Debezium confirms what it has streamed at its next offset flush / heartbeat: wait for it.
  let slotLagBytes: number | null = null;
  const lagDeadline = Date.now() + 60_000;
  for (;;) {
    const lag = await sql<{ lag: string | null }>`
      SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text AS lag
      FROM pg_replication_slots WHERE database = current_database() AND slot_type = 'logical'
      ORDER BY active DESC LIMIT 1`.execute(db);
    slotLagBytes = lag.rows[0]?.lag == null ? null : Number(lag.rows[0].lag);
    if (slotLagBytes === null || slotLagBytes < 1024 * 1024 || Date.now() > lagDeadline) break;
    await sleep(1000);
  }
  if (slotLagBytes !== null && slotLagBytes >= 1024 * 1024) {
    problems.push(`the replication slot lags ${slotLagBytes} bytes behind`);
  }

  let disagreements = 0;
  for (const id of ids) {
    const found = await verifyExecution(db, starter.environment.plans, id);
    if (found.length > 0 && disagreements < 5) problems.push(`execution ${id}: ${JSON.stringify(found.slice(0, 3))}`);
    disagreements += found.length;
  }
  if (disagreements > 0) problems.push(`${disagreements} disagreements between the event log and the state tables`);

  await starter.stop();
  await db.destroy();
  return {
    executions: total,
    completed,
    notTerminal,
    otherTerminal,
    effects: effectCount,
    expectedEffects: total * steps,
    duplicatedEffects,
    outboxRows,
    slotLagBytes,
    disagreements,
    faults: injected,
    durationMs: Date.now() - begin,
    ok: problems.length === 0,
    problems,
  };
}
