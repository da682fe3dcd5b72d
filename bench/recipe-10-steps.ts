// npm run bench — a 10-step sequential recipe over the full path (PostgreSQL → Debezium →
// Kafka → worker SDK → reply → decision) on the running stack. Prints figures and writes
// .cache/bench/recipe-10-steps.json. Not a test.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { z } from 'zod';
import { createControlPlane } from '../src/control-plane/control-plane.js';
import { recipe } from '../src/recipe/builder.js';
import { createWorker, defineCapability } from '../src/worker/index.js';
import { databaseUrl, kafkaBrokers, loadStackConfig } from '../scripts/stack/config.js';

const STEPS = Number(process.env.BENCH_STEPS ?? 10);
const LOW_LOAD_RUNS = Number(process.env.BENCH_LOW_LOAD_RUNS ?? 30);
const SATURATION_RUNS = Number(process.env.BENCH_SATURATION_RUNS ?? 300);
const config = loadStackConfig();
const run = Date.now().toString(36);
const capability = `bench${run}.step`;

const received = new Map<string, number>(); // `${executionId}/${stepId}` → when the worker got it (epoch ms)
const step = defineCapability({
  name: capability,
  input: z.object({ n: z.number() }),
  output: z.object({ n: z.number() }),
  handler: async ({ n }, ctx) => {
    received.set(`${ctx.executionId}/${ctx.stepId}`, Date.now());
    return { n: n + 1 };
  },
});

const controlPlane = createControlPlane({
  databaseUrl: databaseUrl(config),
  brokers: kafkaBrokers(config),
  replyTopic: `sous.bench.replies.${run}`,
  groupId: `sous-bench-cp-${run}`,
  poolSize: 12,
  partitionsConsumedConcurrently: 6,
});
const worker = createWorker({
  brokers: kafkaBrokers(config),
  capabilities: [step],
  groupId: `sous-bench-worker-${run}`,
  concurrency: 12,
  handleSignals: false,
});

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
const summary = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 50), p99: pct(s, 99), max: s.at(-1) ?? Number.NaN };
};

async function waitAll(ids: string[]) {
  for (;;) {
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM sous.execution WHERE id = ANY(${ids}::uuid[]) AND status IN ('completed', 'failed', 'cancelled')`.execute(
      controlPlane.db,
    );
    if ((rows[0]?.n ?? 0) >= ids.length) return;
    await sleep(20);
  }
}

/** End-to-end latency (first decision → last) and step-to-step dispatch, from recorded times. */
async function measure(ids: string[]) {
  const executions = await sql<{ id: string; status: string; ms: string }>`
    SELECT id, status, extract(epoch FROM finished_at - created_at) * 1000 AS ms FROM sous.execution WHERE id = ANY(${ids}::uuid[])`.execute(
    controlPlane.db,
  );
  const failed = executions.rows.filter((r) => r.status !== 'completed').length;
  const steps = await sql<{ execution_id: string; step_key: string; finished: string }>`
    SELECT execution_id, step_key, extract(epoch FROM finished_at) * 1000 AS finished FROM sous.step WHERE execution_id = ANY(${ids}::uuid[])`.execute(
    controlPlane.db,
  );
  const finished = new Map(steps.rows.map((r) => [`${r.execution_id}/${r.step_key}`, Number(r.finished)]));
  const dispatch: number[] = [];
  for (const id of ids) {
    for (let i = 2; i <= STEPS; i++) {
      const previous = finished.get(`${id}/s${i - 1}`);
      const got = received.get(`${id}/s${i}`);
      if (previous !== undefined && got !== undefined) dispatch.push(got - previous);
    }
  }
  return { failed, endToEnd: summary(executions.rows.map((r) => Number(r.ms))), stepToStep: summary(dispatch) };
}

async function pgCounters() {
  const { rows } = await sql<{ xact: string; wal: string; ins: string; upd: string }>`
    SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())::text AS xact,
      pg_current_wal_lsn() - '0/0'::pg_lsn AS wal,
      (SELECT sum(n_tup_ins) FROM pg_stat_user_tables)::text AS ins,
      (SELECT sum(n_tup_upd) FROM pg_stat_user_tables)::text AS upd`.execute(controlPlane.db);
  const r = rows[0];
  return { xact: Number(r?.xact), wal: Number(r?.wal), ins: Number(r?.ins), upd: Number(r?.upd) };
}

try {
  await controlPlane.start();
  await worker.start();
  let plan = recipe(`bench-${STEPS}-steps`);
  for (let i = 1; i <= STEPS; i++)
    plan = plan.task(`s${i}`, capability, { input: { n: i === 1 ? '0' : `outputs.s${i - 1}.n` } });
  const built = plan.build();
  await controlPlane.registerRecipe(built);
  const start = () => controlPlane.startExecution({ recipe: built.name }).then((s) => s.executionId);

  // Warm-up: JIT, connections, group joins.
  await waitAll(await Promise.all(Array.from({ length: 5 }, start)));

  const low: string[] = [];
  for (let i = 0; i < LOW_LOAD_RUNS; i++) {
    const id = await start();
    await waitAll([id]);
    low.push(id);
  }
  const lowLoad = await measure(low);

  const before = await pgCounters();
  const began = performance.now();
  const ids = await Promise.all(Array.from({ length: SATURATION_RUNS }, start));
  await waitAll(ids);
  const seconds = (performance.now() - began) / 1000;
  const after = await pgCounters();
  const saturation = await measure(ids);
  const totalSteps = SATURATION_RUNS * STEPS;
  const result = {
    at: new Date().toISOString(),
    steps: STEPS,
    lowLoad: { runs: LOW_LOAD_RUNS, ...lowLoad },
    saturation: {
      runs: SATURATION_RUNS,
      seconds,
      executionsPerSecond: SATURATION_RUNS / seconds,
      stepsPerSecond: totalSteps / seconds,
      ...saturation,
    },
    perStep: {
      transactions: (after.xact - before.xact) / totalSteps,
      walBytes: (after.wal - before.wal) / totalSteps,
      rowsInserted: (after.ins - before.ins) / totalSteps,
      rowsUpdated: (after.upd - before.upd) / totalSteps,
    },
  };
  const f = (n: number) => n.toFixed(1);
  console.log(`${STEPS}-step sequential recipe, worker SDK handler returning at once, 2-core machine`);
  console.log(
    `low load (one at a time, ${LOW_LOAD_RUNS} runs): end-to-end p50 ${f(lowLoad.endToEnd.p50)} ms, p99 ${f(lowLoad.endToEnd.p99)} ms; step-to-step p50 ${f(lowLoad.stepToStep.p50)} ms, p99 ${f(lowLoad.stepToStep.p99)} ms`,
  );
  console.log(
    `saturation (${SATURATION_RUNS} started at once): ${f(result.saturation.executionsPerSecond)} executions/s, ${f(result.saturation.stepsPerSecond)} steps/s; end-to-end p50 ${f(saturation.endToEnd.p50)} ms, p99 ${f(saturation.endToEnd.p99)} ms; step-to-step p50 ${f(saturation.stepToStep.p50)} ms, p99 ${f(saturation.stepToStep.p99)} ms; failed ${saturation.failed}`,
  );
  console.log(
    `per step (saturation): ${f(result.perStep.transactions)} PostgreSQL transactions, ${Math.round(result.perStep.walBytes)} WAL bytes, ${f(result.perStep.rowsInserted)} rows inserted, ${f(result.perStep.rowsUpdated)} rows updated`,
  );
  const out = join(config.root, '.cache', 'bench');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, `recipe-${STEPS}-steps.json`), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`written to ${join(out, `recipe-${STEPS}-steps.json`)}`);
} finally {
  await worker.stop();
  await controlPlane.stop();
}
