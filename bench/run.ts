// npm run bench — the engine's figures over the full path (PostgreSQL → Debezium → Kafka →
// worker SDK → reply → decision) on the running local stack. Each workload runs BENCH_RUNS
// times against a control plane of its own in a child process (so its memory is its own);
// the table shows the median and the spread (min–max) of the runs, and every run's raw
// figures go to .cache/bench/results.json. Prints figures; not a test.
//
// Sizes (environment): BENCH_RUNS 3, BENCH_LOW_LOAD 30, BENCH_SATURATION 300,
// BENCH_LONG 30 (executions of the 100-step recipe), BENCH_FOREACH_ITEMS 10000,
// BENCH_SLOW_MS 20 (the forEach's slow step), BENCH_WORKLOADS (comma list: low,saturation,
// long,foreach). Control-plane settings under test: SOUS_REPLY_BATCH_SIZE,
// SOUS_REPLY_CONCURRENCY, SOUS_PG_POOL_SIZE (passed on to the child).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import { z } from 'zod';
import { createControlPlane, type ControlPlane } from '../src/control-plane/control-plane.js';
import type { Database } from '../src/db/schema.js';
import { recipe } from '../src/recipe/builder.js';
import { createWorker, defineCapability } from '../src/worker/index.js';
import { NodeChild } from '../scripts/node-child.js';
import { databaseUrl, kafkaBrokers, loadStackConfig } from '../src/stack/config.js';

const settingsSchema = z.object({
  BENCH_RUNS: z.coerce.number().int().min(1).default(3),
  BENCH_LOW_LOAD: z.coerce.number().int().min(1).default(30),
  BENCH_SATURATION: z.coerce.number().int().min(1).default(300),
  BENCH_LONG: z.coerce.number().int().min(1).default(30),
  BENCH_FOREACH_ITEMS: z.coerce.number().int().min(1).default(10_000),
  BENCH_SLOW_MS: z.coerce.number().int().min(0).default(20),
  BENCH_WORKLOADS: z.string().default('low,saturation,long,foreach'),
});
const parsedSettings = settingsSchema.safeParse(process.env);
if (!parsedSettings.success) {
  console.error(
    `bench: invalid settings: ${parsedSettings.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
  );
  process.exit(2);
}
const settings = parsedSettings.data;
const workloads = new Set(settings.BENCH_WORKLOADS.split(',').map((w) => w.trim()));
const config = loadStackConfig();
const root = config.root;
const session = Date.now().toString(36);

// ---------------------------------------------------------------- measuring helpers

interface Distribution {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

const pct = (sorted: readonly number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;

function distribution(values: readonly number[]): Distribution {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 50), p99: pct(s, 99), max: s.at(-1) ?? Number.NaN };
}

interface PgCounters {
  readonly xact: number;
  readonly wal: number;
  readonly ins: number;
  readonly upd: number;
}

async function pgCounters(db: Kysely<Database>): Promise<PgCounters> {
  // pg_stat_* counters reach the views some milliseconds after commit.
  await sleep(600);
  const { rows } = await sql<{ xact: string; wal: string; ins: string; upd: string }>`
    SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())::text AS xact,
      (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS wal,
      (SELECT sum(n_tup_ins) FROM pg_stat_user_tables)::text AS ins,
      (SELECT sum(n_tup_upd) FROM pg_stat_user_tables)::text AS upd`.execute(db);
  const r = rows[0];
  return { xact: Number(r?.xact), wal: Number(r?.wal), ins: Number(r?.ins), upd: Number(r?.upd) };
}

function perStep(before: PgCounters, after: PgCounters, steps: number) {
  return {
    transactions: (after.xact - before.xact) / steps,
    walBytes: (after.wal - before.wal) / steps,
    rowsInserted: (after.ins - before.ins) / steps,
    rowsUpdated: (after.upd - before.upd) / steps,
  };
}

/** Peak and current resident memory of a process, from /proc (Linux). */
function memoryOf(pid: number): { peakMiB: number; rssMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { peakMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
}

// ---------------------------------------------------------------- the processes

/** A control plane in a child process of its own, consuming `replyTopic`. */
async function startControlPlaneChild(replyTopic: string, groupId: string, tag: string): Promise<NodeChild> {
  const logs = join(root, '.cache', 'bench', 'logs');
  mkdirSync(logs, { recursive: true });
  const child = new NodeChild(
    'control plane',
    'scripts/control-plane.ts',
    {
      SOUS_DATABASE_URL: databaseUrl(config),
      SOUS_KAFKA_BROKERS: kafkaBrokers(config).join(','),
      SOUS_REPLY_TOPIC: replyTopic,
      SOUS_CONTROL_PLANE_GROUP: groupId,
    },
    'control plane ready',
    join(logs, `control-plane-${tag}.log`),
  );
  await child.start();
  return child;
}

/** When the worker got each command: `${executionId}/${stepKey}` → epoch ms. */
const received = new Map<string, number>();
const stepKey = (stepId: string, itemIndex: number | undefined) =>
  itemIndex === undefined ? stepId : `${stepId}[${itemIndex}]`;

interface Rig {
  readonly tag: string;
  readonly starter: ControlPlane;
  readonly child: NodeChild;
  readonly capability: string;
  stop(): Promise<void>;
}

/** A control-plane child, a starting (non-consuming) control plane and a worker, all on topics of their own. */
let rigs = 0;
async function rig(name: string, slowMs: number): Promise<Rig> {
  // Topics, groups, capability and recipe of their own per run: nothing carries over.
  const tag = `${session}-${name}-${++rigs}`;
  const replyTopic = `sous.bench.replies.${tag}`;
  const capability = `bench${tag.replace(/[^a-z0-9]/g, '')}.step`;
  const starter = createControlPlane({
    databaseUrl: databaseUrl(config),
    brokers: kafkaBrokers(config),
    replyTopic,
    consume: false,
    poolSize: 4,
  });
  await starter.start(); // migrates and creates the reply topic before the child joins it
  const child = await startControlPlaneChild(replyTopic, `sous-bench-cp-${tag}`, tag);
  const step = defineCapability({
    name: capability,
    input: z.object({ n: z.number() }),
    output: z.object({ n: z.number() }),
    handler: async ({ n }, ctx) => {
      received.set(`${ctx.executionId}/${stepKey(ctx.stepId, ctx.itemIndex)}`, Date.now());
      if (slowMs > 0) await sleep(slowMs);
      return { n: n + 1 };
    },
  });
  const worker = createWorker({
    brokers: kafkaBrokers(config),
    capabilities: [step],
    groupId: `sous-bench-worker-${tag}`,
    concurrency: 12,
    handleSignals: false,
  });
  await worker.start();
  return {
    tag,
    starter,
    child,
    capability,
    async stop() {
      await worker.stop();
      await child.stop();
      await starter.stop();
    },
  };
}

async function waitAll(db: Kysely<Database>, ids: readonly string[]) {
  for (;;) {
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM sous.execution
      WHERE id = ANY(${ids}::uuid[]) AND status IN ('completed', 'failed', 'cancelled')`.execute(db);
    if ((rows[0]?.n ?? 0) >= ids.length) return;
    await sleep(25);
  }
}

/** End-to-end latency (start → finish) and step-to-step dispatch (reply decided → next command at the worker). */
async function latencies(db: Kysely<Database>, ids: readonly string[], steps: number) {
  const executions = await sql<{ status: string; ms: string }>`
    SELECT status, (extract(epoch FROM finished_at - created_at) * 1000)::text AS ms
    FROM sous.execution WHERE id = ANY(${ids}::uuid[])`.execute(db);
  const finished = await sql<{ execution_id: string; step_key: string; at: string }>`
    SELECT execution_id, step_key, (extract(epoch FROM finished_at) * 1000)::text AS at
    FROM sous.step WHERE execution_id = ANY(${ids}::uuid[])`.execute(db);
  const finishedAt = new Map(finished.rows.map((r) => [`${r.execution_id}/${r.step_key}`, Number(r.at)]));
  const dispatch: number[] = [];
  for (const id of ids) {
    for (let i = 2; i <= steps; i++) {
      const previous = finishedAt.get(`${id}/s${i - 1}`);
      const got = received.get(`${id}/s${i}`);
      if (previous !== undefined && got !== undefined) dispatch.push(got - previous);
    }
  }
  return {
    failed: executions.rows.filter((r) => r.status !== 'completed').length,
    endToEnd: distribution(executions.rows.map((r) => Number(r.ms))),
    stepToStep: distribution(dispatch),
  };
}

function sequential(name: string, capability: string, steps: number) {
  let plan = recipe(name);
  for (let i = 1; i <= steps; i++)
    plan = plan.task(`s${i}`, capability, { input: { n: i === 1 ? '0' : `outputs.s${i - 1}.n` } });
  return plan.build();
}

// ---------------------------------------------------------------- workloads

type Figures = Record<string, number>;

/** Executions of a sequential recipe: `count` at once, or one after the other. */
async function sequentialWorkload(
  name: string,
  steps: number,
  count: number,
  mode: 'at-once' | 'one-at-a-time',
): Promise<Figures> {
  const r = await rig(name, 0);
  try {
    const plan = sequential(`bench-${steps}-steps-${r.tag}`, r.capability, steps);
    await r.starter.registerRecipe(plan);
    const start = () => r.starter.startExecution({ recipe: plan.name }).then((s) => s.executionId);
    await waitAll(r.starter.db, await Promise.all(Array.from({ length: 3 }, start))); // warm-up
    const ids: string[] = [];
    const before = await pgCounters(r.starter.db);
    const began = performance.now();
    if (mode === 'at-once') {
      ids.push(...(await Promise.all(Array.from({ length: count }, start))));
      await waitAll(r.starter.db, ids);
    } else {
      for (let i = 0; i < count; i++) {
        const id = await start();
        await waitAll(r.starter.db, [id]);
        ids.push(id);
      }
    }
    const seconds = (performance.now() - began) / 1000;
    const after = await pgCounters(r.starter.db);
    const l = await latencies(r.starter.db, ids, steps);
    const cost = perStep(before, after, count * steps);
    const memory = memoryOf(r.child.pid ?? 0);
    return {
      executionsPerSecond: count / seconds,
      stepsPerSecond: (count * steps) / seconds,
      msPerStep: (seconds * 1000) / (count * steps),
      endToEndP50: l.endToEnd.p50,
      endToEndP99: l.endToEnd.p99,
      stepToStepP50: l.stepToStep.p50,
      stepToStepP99: l.stepToStep.p99,
      failed: l.failed,
      transactionsPerStep: cost.transactions,
      walBytesPerStep: cost.walBytes,
      rowsInsertedPerStep: cost.rowsInserted,
      rowsUpdatedPerStep: cost.rowsUpdated,
      controlPlanePeakMiB: memory.peakMiB,
    };
  } finally {
    await r.stop();
  }
}

/** One execution: a forEach over `items` items whose one step is slow. */
async function forEachWorkload(items: number, slowMs: number): Promise<Figures> {
  const r = await rig('foreach', slowMs);
  try {
    const plan = recipe(`bench-foreach-${r.tag}`)
      .forEach('each', { items: `[1..${items}]`, concurrency: 100 }, (body) =>
        body.task('slow', r.capability, { input: { n: 'item' } }),
      )
      .build();
    await r.starter.registerRecipe(plan);
    const idle = memoryOf(r.child.pid ?? 0);
    let peakRss = idle.rssMiB;
    const sampler = setInterval(() => {
      try {
        peakRss = Math.max(peakRss, memoryOf(r.child.pid ?? 0).rssMiB);
      } catch {
        // the child is gone; the run fails below
      }
    }, 250);
    const before = await pgCounters(r.starter.db);
    const began = performance.now();
    const { executionId } = await r.starter.startExecution({ recipe: plan.name });
    await waitAll(r.starter.db, [executionId]);
    const seconds = (performance.now() - began) / 1000;
    clearInterval(sampler);
    const after = await pgCounters(r.starter.db);
    const memory = memoryOf(r.child.pid ?? 0);
    const status = await sql<{ status: string }>`SELECT status FROM sous.execution WHERE id = ${executionId}`.execute(
      r.starter.db,
    );
    const cost = perStep(before, after, items);
    return {
      seconds,
      itemsPerSecond: items / seconds,
      failed: status.rows[0]?.status === 'completed' ? 0 : 1,
      controlPlaneIdleMiB: idle.rssMiB,
      controlPlanePeakMiB: Math.max(memory.peakMiB, peakRss),
      transactionsPerStep: cost.transactions,
      walBytesPerStep: cost.walBytes,
      rowsInsertedPerStep: cost.rowsInserted,
      rowsUpdatedPerStep: cost.rowsUpdated,
    };
  } finally {
    await r.stop();
  }
}

// ---------------------------------------------------------------- main

const plans: { key: string; title: string; run: () => Promise<Figures> }[] = [];
if (workloads.has('low'))
  plans.push({
    key: 'low',
    title: `10-step recipe, low load (${settings.BENCH_LOW_LOAD} one at a time)`,
    run: () => sequentialWorkload('low', 10, settings.BENCH_LOW_LOAD, 'one-at-a-time'),
  });
if (workloads.has('saturation'))
  plans.push({
    key: 'saturation',
    title: `10-step recipe, saturation (${settings.BENCH_SATURATION} started at once)`,
    run: () => sequentialWorkload('saturation', 10, settings.BENCH_SATURATION, 'at-once'),
  });
if (workloads.has('long'))
  plans.push({
    key: 'long',
    title: `100-step recipe, saturation (${settings.BENCH_LONG} started at once)`,
    run: () => sequentialWorkload('long', 100, settings.BENCH_LONG, 'at-once'),
  });
if (workloads.has('foreach'))
  plans.push({
    key: 'foreach',
    title: `forEach over ${settings.BENCH_FOREACH_ITEMS} items, concurrency 100, step of ${settings.BENCH_SLOW_MS} ms`,
    run: () => forEachWorkload(settings.BENCH_FOREACH_ITEMS, settings.BENCH_SLOW_MS),
  });

const controlPlaneSettings = {
  replyBatchSize: process.env.SOUS_REPLY_BATCH_SIZE ?? '50 (default)',
  replyConcurrency: process.env.SOUS_REPLY_CONCURRENCY ?? '4 (default)',
  poolSize: process.env.SOUS_PG_POOL_SIZE ?? '10 (default)',
};
console.log(
  `sous bench: ${settings.BENCH_RUNS} runs per workload on ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; control plane ${JSON.stringify(controlPlaneSettings)}`,
);

const raw: Record<string, Figures[]> = {};
for (let run = 1; run <= settings.BENCH_RUNS; run++) {
  for (const plan of plans) {
    const figures = await plan.run();
    (raw[plan.key] ??= []).push(figures);
    console.log(
      `run ${run} ${plan.key}: ${JSON.stringify(figures, (_k, v: unknown) => (typeof v === 'number' ? Number(v.toFixed(2)) : v))}`,
    );
  }
}

const median = (values: readonly number[]) => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};
const format = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(1));
const summary: Record<string, Record<string, { median: number; min: number; max: number }>> = {};
console.log('');
for (const plan of plans) {
  const runs = raw[plan.key] ?? [];
  const figures: Record<string, { median: number; min: number; max: number }> = {};
  summary[plan.key] = figures;
  console.log(plan.title);
  console.log(`  ${'figure'.padEnd(24)} ${'median'.padStart(10)}  spread (min–max)`);
  for (const figure of Object.keys(runs[0] ?? {})) {
    const values = runs.map((r) => r[figure] ?? Number.NaN);
    const m = { median: median(values), min: Math.min(...values), max: Math.max(...values) };
    figures[figure] = m;
    console.log(`  ${figure.padEnd(24)} ${format(m.median).padStart(10)}  ${format(m.min)}–${format(m.max)}`);
  }
}
const shortPerStep = summary.saturation?.msPerStep?.median;
const longPerStep = summary.long?.msPerStep?.median;
if (shortPerStep !== undefined && longPerStep !== undefined) {
  console.log(
    `\n100-step vs 10-step at saturation: ${format(longPerStep)} ms vs ${format(shortPerStep)} ms of wall time per step (${(longPerStep / shortPerStep).toFixed(2)}×); WAL per step ${format(summary.long?.walBytesPerStep?.median ?? Number.NaN)} vs ${format(summary.saturation?.walBytesPerStep?.median ?? Number.NaN)} bytes`,
  );
}
const out = join(root, '.cache', 'bench');
mkdirSync(out, { recursive: true });
const file = join(out, 'results.json');
writeFileSync(
  file,
  `${JSON.stringify({ at: new Date().toISOString(), cores: cpus().length, settings, controlPlaneSettings, summary, raw }, null, 2)}\n`,
);
console.log(`\nwritten to ${file}`);
process.exit(0);
