// npm run bench — the engine's figures over the full path (PostgreSQL → Debezium → Kafka →
// worker SDK → reply → decision) on the running local stack, beside the targets of issue 10.
// Each workload runs BENCH_RUNS times with a control plane and a worker of its own, each in a
// child process (so /proc gives each its CPU and memory); the tables show the median and the
// spread (min–max) of the runs, and every run's raw figures go to .cache/bench/results.json.
// Prints figures; not a test. Sizes and settings: see the README's Benchmarks section.
//
// How each figure is counted:
// - write transactions: the delta of the next transaction id (pg_snapshot_xmax of the current
//   snapshot, which assigns none), cluster-wide: every transaction that wrote, nothing else.
// - SQL round trips: pg_stat_statements calls (track_utility on: BEGIN/COMMIT count) of the
//   control plane's role; executions are started as another role, counted apart (start…).
// - CPU per step: utime+stime deltas from /proc of the control plane, the worker, the whole
//   PostgreSQL cluster (postmaster, live and exited backends), the Kafka broker and Connect;
//   `Other` is the rest of the machine (other users): large means noisy figures.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { recipe } from '../src/recipe/builder.js';
import { reportingWorkload } from './reporting.js';
import { loadStackConfig } from '../src/stack/config.js';
import { migrateStack } from '../src/stack/stack.js';
import { openProbe, STARTER_ROLE, type Marks, type Probe, type RowCounts } from './probe.js';
import { cpuPerStep, memoryOf, readCpu } from './proc.js';
import { startRig, type Rig, type WorkerTimes } from './rig.js';
import { distribution, format, spread, type Spread } from './stats.js';
import { targetsTable } from './targets.js';
import { walBreakdown, type WalShare } from './wal-breakdown.js';

const settingsSchema = z.object({
  BENCH_RUNS: z.coerce.number().int().min(1).default(3),
  BENCH_LOW_LOAD: z.coerce.number().int().min(1).default(50),
  BENCH_SATURATION: z.coerce.number().int().min(1).default(2000),
  // As many executions at once as the 10-step saturation, so as many steps in flight (one
  // per execution) and batches of the same size: the per-step costs then differ only by the
  // recipe's length. (At 200, the old default, batches were a tenth as large and a step cost
  // a quarter more in every process whatever its recipe.) @default BENCH_SATURATION
  BENCH_LONG: z.coerce.number().int().min(1).optional(),
  // Executions of an unmeasured 10-step pass before the runs, so the broker's and Connect's
  // JVMs are compiled (a first run on a new stack is slower by a third); 0: none.
  BENCH_WARMUP: z.coerce.number().int().min(0).default(1000),
  // Executions started at once go in one startExecutions call (1), or one startExecution
  // each, all in flight together (0).
  BENCH_BULK_START: z
    .enum(['0', '1'])
    .default('1')
    .transform((v) => v === '1'),
  BENCH_FOREACH_ITEMS: z.coerce.number().int().min(1).default(10_000),
  BENCH_SLOW_MS: z.coerce.number().int().min(0).default(20),
  BENCH_WORKER_CONCURRENCY: z.coerce.number().int().min(1).default(100),
  // The forEach's own concurrency: items in flight at once. @default BENCH_WORKER_CONCURRENCY
  BENCH_FOREACH_CONCURRENCY: z.coerce.number().int().min(1).optional(),
  // Issue 11's forEach: the same list with 200 items in flight (the worker's concurrency stays).
  BENCH_FOREACH_WIDE_CONCURRENCY: z.coerce.number().int().min(1).default(200),
  BENCH_WORKLOADS: z.string().default('low,saturation,long,foreach,foreach-wide'),
  // The reporting workload (not in the default list: it writes 1,000,000 events).
  BENCH_REPORTING_EVENTS: z.coerce.number().int().min(10).default(1_000_000),
  BENCH_REPORTING_DAYS: z.coerce.number().int().min(1).default(7),
});
const parsedSettings = settingsSchema.safeParse(process.env);
if (!parsedSettings.success) {
  console.error(
    `bench: invalid settings: ${parsedSettings.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
  );
  process.exit(2);
}
const settings = parsedSettings.data;
const longCount = settings.BENCH_LONG ?? settings.BENCH_SATURATION;
const workloads = new Set(settings.BENCH_WORKLOADS.split(',').map((w) => w.trim()));
const forEachConcurrency = settings.BENCH_FOREACH_CONCURRENCY ?? settings.BENCH_WORKER_CONCURRENCY;
const config = loadStackConfig();

type Figures = Record<string, number>;

/** Per workload, where its last run's WAL went (pg_waldump). */
const walShares: Record<string, WalShare[]> = {};

// ---------------------------------------------------------------- measuring

interface Window {
  readonly marks: Marks;
  readonly rows: RowCounts;
  readonly cpu: ReturnType<typeof readCpu>;
  readonly at: number;
}

/** Opens the measured window: statement counts reset, then every counter read. */
async function open(probe: Probe, rig: Rig): Promise<Window> {
  await probe.resetStatements();
  return {
    rows: await probe.rowCounts(),
    marks: await probe.marks(),
    cpu: readCpu(rig.processes),
    at: performance.now(),
  };
}

/** Closes it: the figures of the window per step (or item). */
async function close(probe: Probe, rig: Rig, w: Window, steps: number): Promise<Figures> {
  const at = performance.now();
  const cpu = readCpu(rig.processes);
  const marks = await probe.marks();
  await sleep(1100); // table statistics reach the views up to a second after commit
  const rows = await probe.rowCounts();
  const seconds = (at - w.at) / 1000;
  return {
    seconds,
    stepsPerSecond: steps / seconds,
    writeTransactionsPerStep: (marks.xid - w.marks.xid) / steps,
    sqlRoundTripsPerStep: (marks.controlPlaneCalls - w.marks.controlPlaneCalls) / steps,
    startRoundTripsPerStep: (marks.starterCalls - w.marks.starterCalls) / steps,
    walBytesPerStep: (marks.walBytes - w.marks.walBytes) / steps,
    rowsInsertedPerStep: (rows.inserted - w.rows.inserted) / steps,
    rowsUpdatedPerStep: (rows.updated - w.rows.updated) / steps,
    hotUpdateShare: (rows.hotUpdated - w.rows.hotUpdated) / Math.max(1, rows.updated - w.rows.updated),
    indexInsertionsPerStep: (rows.indexInsertions - w.rows.indexInsertions) / steps,
    ...cpuPerStep(w.cpu, cpu, steps),
  };
}

/**
 * Latencies of sequential executions: end to end (start → finished), step to step (step
 * decided → next command at the worker, the target's definition) and the worker's loop
 * (handler returned → next command at the worker: reply, decision and the outbox leg).
 */
async function latencies(probe: Probe, ids: readonly string[], steps: number, times: WorkerTimes) {
  const executions = await probe.query<{ status: string; ms: string }>(
    `SELECT status, (extract(epoch FROM finished_at - created_at) * 1000)::text AS ms
     FROM sous.execution WHERE id = ANY($1::uuid[])`,
    [ids],
  );
  const finished = await probe.query<{ execution_id: string; step_key: string; at: string }>(
    `SELECT execution_id, step_key, (extract(epoch FROM finished_at) * 1000)::text AS at
     FROM sous.step WHERE execution_id = ANY($1::uuid[])`,
    [ids],
  );
  const decidedAt = new Map(finished.map((r) => [`${r.execution_id}/${r.step_key}`, Number(r.at)]));
  const stepToStep: number[] = [];
  const loop: number[] = [];
  for (const id of ids) {
    for (let i = 2; i <= steps; i++) {
      const got = times.received.get(`${id}/s${i}`);
      if (got === undefined) continue;
      const decided = decidedAt.get(`${id}/s${i - 1}`);
      const handled = times.handled.get(`${id}/s${i - 1}`);
      if (decided !== undefined) stepToStep.push(got - decided);
      if (handled !== undefined) loop.push(got - handled);
    }
  }
  const e2e = distribution(executions.map((r) => Number(r.ms)));
  const s2s = distribution(stepToStep);
  const l = distribution(loop);
  return {
    failed: executions.filter((r) => r.status !== 'completed').length,
    endToEndP50: e2e.p50,
    endToEndP99: e2e.p99,
    stepToStepP50: s2s.p50,
    stepToStepP99: s2s.p99,
    workerLoopP50: l.p50,
    workerLoopP99: l.p99,
  };
}

function sequential(name: string, capability: string, steps: number) {
  let plan = recipe(name);
  for (let i = 1; i <= steps; i++)
    plan = plan.task(`s${i}`, capability, { input: { n: i === 1 ? '0' : `outputs.s${i - 1}.n` } });
  return plan.build();
}

const topStatements: Record<string, { calls: number; query: string }[]> = {};

// ---------------------------------------------------------------- workloads

/** Executions of a sequential recipe: `count` started at once, or one after the other. */
async function sequentialWorkload(
  probe: Probe,
  key: string,
  steps: number,
  count: number,
  mode: 'at-once' | 'one-at-a-time',
): Promise<Figures> {
  const rig = await startRig({ config, name: key, slowMs: 0, workerConcurrency: settings.BENCH_WORKER_CONCURRENCY });
  let figures: Figures = {};
  const ids: string[] = [];
  let times: WorkerTimes | undefined;
  try {
    const plan = sequential(`bench-${steps}-steps-${rig.tag}`, rig.capability, steps);
    await rig.starter.registerRecipe(plan);
    const start = () => rig.starter.startExecution({ recipe: plan.name }).then((s) => s.executionId);
    await probe.waitFinished(await Promise.all(Array.from({ length: 3 }, start))); // warm-up
    const window = await open(probe, rig);
    if (mode === 'at-once' && settings.BENCH_BULK_START) {
      // As the peers enqueue their jobs: one call (one transaction) starts them all.
      const started = await rig.starter.startExecutions(Array.from({ length: count }, () => ({ recipe: plan.name })));
      ids.push(...started.map((s) => s.executionId));
      await probe.waitFinished(ids);
    } else if (mode === 'at-once') {
      ids.push(...(await Promise.all(Array.from({ length: count }, start))));
      await probe.waitFinished(ids);
    } else {
      for (let i = 0; i < count; i++) {
        const id = await start();
        await probe.waitFinished([id]);
        ids.push(id);
      }
    }
    figures = await close(probe, rig, window, count * steps);
    if (mode === 'at-once') {
      // The last run's: where the WAL went, by table and record kind.
      const to = window.marks.walBytes + (figures.walBytesPerStep ?? 0) * count * steps;
      const shares = await walBreakdown(config, probe, window.marks.walBytes, to, count * steps);
      if (shares !== undefined) walShares[key] = shares;
    }
    figures.controlPlanePeakMiB = memoryOf(rig.controlPlanePid).peakMiB;
    topStatements[key] = await probe.topStatements(config.pgUser, 15);
    topStatements[`${key}:start`] = await probe.topStatements(STARTER_ROLE, 10);
  } finally {
    times = await rig.stop();
  }
  return { ...figures, ...(await latencies(probe, ids, steps, times)) };
}

/** One execution: a forEach over `items` items whose one step takes `slowMs`, `concurrency` in flight. */
async function forEachWorkload(
  probe: Probe,
  key: 'foreach' | 'foreach-wide',
  items: number,
  slowMs: number,
  concurrency: number,
): Promise<Figures> {
  let times: WorkerTimes;
  let stopped = false;
  const rig = await startRig({
    config,
    name: key,
    slowMs,
    workerConcurrency: settings.BENCH_WORKER_CONCURRENCY,
  });
  try {
    const plan = recipe(`bench-foreach-${rig.tag}`)
      .forEach('each', { items: `[1..${items}]`, concurrency }, (body) =>
        body.task('slow', rig.capability, { input: { n: 'item' } }),
      )
      .build();
    await rig.starter.registerRecipe(plan);
    const idle = memoryOf(rig.controlPlanePid);
    let peakRss = idle.rssMiB;
    // RSS over time: a long list must not make the control plane grow as it goes.
    const samples: { at: number; rss: number }[] = [];
    const sampler = setInterval(() => {
      const rss = memoryOf(rig.controlPlanePid).rssMiB || 0;
      samples.push({ at: performance.now(), rss });
      peakRss = Math.max(peakRss, rss);
    }, 250);
    const window = await open(probe, rig);
    const { executionId } = await rig.starter.startExecution({ recipe: plan.name });
    await probe.waitFinished([executionId]);
    clearInterval(sampler);
    const figures = await close(probe, rig, window, items);
    // Where the WAL went (the last run's), as for the saturation workloads.
    const to = window.marks.walBytes + (figures.walBytesPerStep ?? 0) * items;
    const shares = await walBreakdown(config, probe, window.marks.walBytes, to, items);
    if (shares !== undefined) walShares[key] = shares;
    const [row] = await probe.query<{ status: string }>(`SELECT status FROM sous.execution WHERE id = $1`, [
      executionId,
    ]);
    topStatements[key] = await probe.topStatements(config.pgUser, 15);
    const { stepsPerSecond, ...rest } = figures;
    const peakMiB = Math.max(memoryOf(rig.controlPlanePid).peakMiB, peakRss);
    const endMiB = memoryOf(rig.controlPlanePid).rssMiB;
    times = await rig.stop();
    stopped = true;
    return {
      itemsPerSecond: stepsPerSecond ?? Number.NaN,
      ...rest,
      failed: row?.status === 'completed' ? 0 : 1,
      controlPlaneIdleMiB: idle.rssMiB,
      controlPlanePeakMiB: peakMiB,
      ...halves(samples),
      controlPlaneEndMiB: endMiB,
      ...(await itemLegs(probe, executionId, times)),
    };
  } finally {
    if (!stopped) await rig.stop();
  }
}

/** Peak RSS of the first and of the second half of the run, MiB: equal when memory stays flat. */
function halves(samples: readonly { at: number; rss: number }[]) {
  const first = samples[0]?.at ?? 0;
  const middle = (first + (samples.at(-1)?.at ?? 0)) / 2;
  const peak = (part: readonly { rss: number }[]) =>
    part.reduce((max, s) => Math.max(max, s.rss), part.length === 0 ? Number.NaN : 0);
  return {
    controlPlanePeakFirstHalfMiB: peak(samples.filter((s) => s.at <= middle)),
    controlPlanePeakSecondHalfMiB: peak(samples.filter((s) => s.at > middle)),
  };
}

/**
 * Where an item's time goes, p50 over the items: decided → at the worker (commit, the
 * outbox leg through Debezium and Kafka, the worker's fetch) and handled → decided (the
 * reply leg: the worker's send, Kafka, the control plane's queue and its decision).
 */
async function itemLegs(probe: Probe, executionId: string, times: WorkerTimes) {
  const attempts = await probe.query<{ step_key: string; scheduled: string; finished: string | null }>(
    `SELECT step_key, (extract(epoch FROM scheduled_at) * 1000)::text AS scheduled,
       (extract(epoch FROM finished_at) * 1000)::text AS finished
     FROM sous.step_attempt WHERE execution_id = $1`,
    [executionId],
  );
  const toWorker: number[] = [];
  const back: number[] = [];
  for (const a of attempts) {
    const received = times.received.get(`${executionId}/${a.step_key}`);
    const handled = times.handled.get(`${executionId}/${a.step_key}`);
    if (received !== undefined) toWorker.push(received - Number(a.scheduled));
    if (handled !== undefined && a.finished !== null) back.push(Number(a.finished) - handled);
  }
  return { toWorkerP50Ms: distribution(toWorker).p50, replyToDecisionP50Ms: distribution(back).p50 };
}

// ---------------------------------------------------------------- main

const plans: { key: string; title: string; run: (probe: Probe) => Promise<Figures> }[] = [];
const startedBy = settings.BENCH_BULK_START ? 'one startExecutions call' : 'one startExecution each';
if (workloads.has('low'))
  plans.push({
    key: 'low',
    title: `10-step recipe, one at a time (${settings.BENCH_LOW_LOAD} executions)`,
    run: (probe) => sequentialWorkload(probe, 'low', 10, settings.BENCH_LOW_LOAD, 'one-at-a-time'),
  });
if (workloads.has('saturation'))
  plans.push({
    key: 'saturation',
    title: `10-step recipe, saturation (${settings.BENCH_SATURATION} started at once, ${startedBy})`,
    run: (probe) => sequentialWorkload(probe, 'saturation', 10, settings.BENCH_SATURATION, 'at-once'),
  });
if (workloads.has('long'))
  plans.push({
    key: 'long',
    title: `100-step recipe, saturation (${longCount} started at once, ${startedBy})`,
    run: (probe) => sequentialWorkload(probe, 'long', 100, longCount, 'at-once'),
  });
if (workloads.has('foreach'))
  plans.push({
    key: 'foreach',
    title: `forEach over ${settings.BENCH_FOREACH_ITEMS} items, concurrency ${forEachConcurrency}, step of ${settings.BENCH_SLOW_MS} ms`,
    run: (probe) =>
      forEachWorkload(probe, 'foreach', settings.BENCH_FOREACH_ITEMS, settings.BENCH_SLOW_MS, forEachConcurrency),
  });
if (workloads.has('foreach-wide'))
  plans.push({
    key: 'foreach-wide',
    title: `forEach over ${settings.BENCH_FOREACH_ITEMS} items, concurrency ${settings.BENCH_FOREACH_WIDE_CONCURRENCY}, step of ${settings.BENCH_SLOW_MS} ms`,
    run: (probe) =>
      forEachWorkload(
        probe,
        'foreach-wide',
        settings.BENCH_FOREACH_ITEMS,
        settings.BENCH_SLOW_MS,
        settings.BENCH_FOREACH_WIDE_CONCURRENCY,
      ),
  });

if (workloads.has('reporting'))
  plans.push({
    key: 'reporting',
    title: `reporting_v2 with a 1-hour window over ${settings.BENCH_REPORTING_EVENTS} seeded events (${settings.BENCH_REPORTING_DAYS} days), then the retention purge`,
    run: () => reportingWorkload(config, settings.BENCH_REPORTING_EVENTS, settings.BENCH_REPORTING_DAYS),
  });

const controlPlaneSettings = {
  replyBatchSize: process.env.SOUS_REPLY_BATCH_SIZE ?? '(default)',
  replyConcurrency: process.env.SOUS_REPLY_CONCURRENCY ?? '(default)',
  poolSize: process.env.SOUS_PG_POOL_SIZE ?? '(default)',
};
console.log(
  `sous bench: ${settings.BENCH_RUNS} runs per workload on ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; worker concurrency ${settings.BENCH_WORKER_CONCURRENCY}; control plane ${JSON.stringify(controlPlaneSettings)}`,
);

// Migrations as sous's own role: the starting role must never create (and own) objects.
await migrateStack(config);
const probe = await openProbe(config);
if (!probe.statementStats) {
  console.log(
    'bench: PostgreSQL runs without pg_stat_statements preloaded: SQL round trips are not counted (restart the stack: npm run stack:down && npm run stack:up)',
  );
}

const raw: Record<string, Figures[]> = {};
const began = performance.now();
try {
  if (settings.BENCH_WARMUP > 0 && (workloads.has('saturation') || workloads.has('low') || workloads.has('long'))) {
    await sequentialWorkload(probe, 'warmup', 10, settings.BENCH_WARMUP, 'at-once');
    console.log(`warm-up: ${settings.BENCH_WARMUP} executions of 10 steps (not measured)`);
  }
  for (let run = 1; run <= settings.BENCH_RUNS; run++) {
    for (const plan of plans) {
      const figures = await plan.run(probe);
      (raw[plan.key] ??= []).push(figures);
      console.log(
        `run ${run} ${plan.key}: ${JSON.stringify(figures, (_k, v: unknown) => (typeof v === 'number' ? Number(format(v)) : v))}`,
      );
    }
  }
} finally {
  await probe.close();
}

const summary: Record<string, Record<string, Spread>> = {};
console.log('');
for (const plan of plans) {
  const runs = raw[plan.key] ?? [];
  const figures: Record<string, Spread> = {};
  summary[plan.key] = figures;
  console.log(plan.title);
  console.log(`  ${'figure'.padEnd(28)} ${'median'.padStart(10)}  spread (min–max)`);
  for (const figure of Object.keys(runs[0] ?? {})) {
    const s = spread(runs.map((r) => r[figure] ?? Number.NaN));
    figures[figure] = s;
    console.log(`  ${figure.padEnd(28)} ${format(s.median).padStart(10)}  ${format(s.min)}–${format(s.max)}`);
  }
  const shares = walShares[plan.key];
  if (shares !== undefined) {
    console.log(`  WAL by relation and record, per step (last run, pg_waldump):`);
    for (const w of shares) {
      console.log(
        `    ${`${w.relation} ${w.record}`.padEnd(40)} ${format(w.bytesPerStep).padStart(7)} B  ${format(w.recordsPerStep).padStart(5)} records`,
      );
    }
  }
}
const shortPerStep = summary.saturation?.stepsPerSecond?.median;
const longPerStep = summary.long?.stepsPerSecond?.median;
if (shortPerStep !== undefined && longPerStep !== undefined) {
  const shortWal = summary.saturation?.walBytesPerStep?.median ?? Number.NaN;
  const longWal = summary.long?.walBytesPerStep?.median ?? Number.NaN;
  // Issue 11: a step of a 100-step recipe costs within 10 % of a 10-step one's (time and WAL).
  const within = longPerStep >= shortPerStep / 1.1 && longWal <= shortWal * 1.1;
  console.log(
    `\n(11) 100-step vs 10-step at saturation: ${format(longPerStep)} vs ${format(shortPerStep)} steps/s; WAL per step ${format(longWal)} vs ${format(shortWal)} bytes; within 10 %: ${within ? 'yes' : 'no'}`,
  );
}
console.log(`\nTargets (issues 10 and 11), medians of ${settings.BENCH_RUNS} run(s):`);
for (const line of targetsTable(summary)) console.log(`  ${line}`);
const minutes = (performance.now() - began) / 60_000;
console.log(`\nbench took ${minutes.toFixed(1)} min`);

const out = join(config.root, '.cache', 'bench');
mkdirSync(out, { recursive: true });
const file = join(out, 'results.json');
writeFileSync(
  file,
  `${JSON.stringify({ at: new Date().toISOString(), cores: cpus().length, settings, controlPlaneSettings, summary, raw, topStatements, walShares }, null, 2)}\n`,
);
console.log(`written to ${file}`);
// Each workload's latest summary also goes to a file of its own, so a run of some workloads
// (BENCH_WORKLOADS=foreach) does not hide the last figures of the others from bench:peers.
const latest = join(out, 'latest');
mkdirSync(latest, { recursive: true });
const at = new Date().toISOString();
for (const [workload, figures] of Object.entries(summary)) {
  writeFileSync(join(latest, `${workload}.json`), `${JSON.stringify({ at, settings, figures }, null, 2)}\n`);
}
process.exit(0);
