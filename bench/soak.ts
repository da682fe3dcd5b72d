// The soak: a steady load, well under saturation, for a long time (an hour by default), sampled
// every minute, to see whether anything grows that should stay flat — the control plane's or the
// worker's memory, the executions waiting, Kafka's command lag, the outbox slot's lag, latency.
// Not a CI test (an hour); run it by hand: `npm run soak` (SOAK_MINUTES=5 for a short look).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { AdminHandle, readCommandLag } from '../src/kafka/consumer-lag.js';
import { createKafka } from '../src/kafka/kafka-client.js';
import { recipe } from '../src/recipe/builder.js';
import { kafkaBrokers, loadStackConfig } from '../src/stack/config.js';
import { migrateStack } from '../src/stack/stack.js';
import { openProbe } from './probe.js';
import { memoryOf } from './proc.js';
import { startRig } from './rig.js';
import { distribution, format, median } from './stats.js';

const settingsSchema = z.object({
  SOAK_MINUTES: z.coerce.number().positive().default(60),
  /** Steps per second to keep up; default half the last `npm run bench` saturation median (else 500). */
  SOAK_RATE: z.coerce.number().positive().optional(),
  SOAK_SAMPLE_SECONDS: z.coerce.number().int().min(5).default(60),
  SOAK_STEPS: z.coerce.number().int().min(1).default(10),
  SOAK_WORKER_CONCURRENCY: z.coerce.number().int().min(1).default(100),
});
const parsed = settingsSchema.safeParse(process.env);
if (!parsed.success) {
  console.error(
    `soak: invalid settings: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
  );
  process.exit(2);
}
const settings = parsed.data;
const config = loadStackConfig();

/** Half the saturation the last bench measured here, or 500 steps/s without one. */
function defaultRate(): number {
  const file = join(config.root, '.cache', 'bench', 'results.json');
  if (!existsSync(file)) return 500;
  const results = z
    .object({ summary: z.record(z.string(), z.record(z.string(), z.object({ median: z.number() }))) })
    .safeParse(JSON.parse(readFileSync(file, 'utf8')));
  const saturation = results.success ? results.data.summary.saturation?.stepsPerSecond?.median : undefined;
  return saturation === undefined ? 500 : Math.round(saturation / 2);
}

interface Sample {
  readonly minute: number;
  readonly controlPlaneMiB: number;
  readonly workerMiB: number;
  readonly running: number;
  readonly commandLag: number;
  readonly slotLagKiB: number;
  readonly finishedPerSecond: number;
  readonly e2eP50: number;
  readonly e2eP99: number;
}

const rate = settings.SOAK_RATE ?? defaultRate();
const perSecond = rate / settings.SOAK_STEPS;
console.log(
  `soak: ${settings.SOAK_MINUTES} min at ${format(rate)} steps/s (${format(perSecond)} ${settings.SOAK_STEPS}-step executions/s), sampled every ${settings.SOAK_SAMPLE_SECONDS} s`,
);
await migrateStack(config);
const probe = await openProbe(config);
const rig = await startRig({
  config,
  name: 'soak',
  slowMs: 0,
  workerConcurrency: settings.SOAK_WORKER_CONCURRENCY,
  recordTimes: false,
});
const admin = new AdminHandle(createKafka({ brokers: kafkaBrokers(config), clientId: 'sous-soak' }));
const samples: Sample[] = [];
let failed = 0;
try {
  let plan = recipe(`soak-${rig.tag}`);
  for (let i = 1; i <= settings.SOAK_STEPS; i++) plan = plan.task(`s${i}`, rig.capability, { input: { n: `${i}` } });
  const built = plan.build();
  await rig.starter.registerRecipe(built);

  const began = performance.now();
  const endAt = began + settings.SOAK_MINUTES * 60_000;
  let started = 0;
  let nextSample = began + settings.SOAK_SAMPLE_SECONDS * 1000;
  let sampleFrom = new Date();
  // Starts in ticks of 100 ms, as many as keep the rate since the beginning (no drift).
  while (performance.now() < endAt) {
    const due = Math.floor(((performance.now() - began) / 1000) * perSecond) - started;
    if (due > 0) {
      await rig.starter.startExecutions(Array.from({ length: due }, () => ({ recipe: built.name })));
      started += due;
    }
    if (performance.now() >= nextSample) {
      const to = new Date();
      samples.push(await sample(samples.length + 1, built.name, sampleFrom, to));
      const s = samples.at(-1);
      if (s !== undefined) console.log(`  ${row(s)}`);
      sampleFrom = to;
      nextSample += settings.SOAK_SAMPLE_SECONDS * 1000;
    }
    await sleep(100);
  }
  failed =
    (
      await probe.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM sous.execution WHERE recipe_name = $1 AND status NOT IN ('completed', 'running')`,
        [built.name],
      )
    )[0]?.n ?? 0;
} finally {
  await admin.close();
  await rig.stop();
  await probe.close();
}

/** One sample: memory now, backlog now, and the executions that finished in [from, to). */
async function sample(minute: number, recipeName: string, from: Date, to: Date): Promise<Sample> {
  const finished = await probe.query<{ ms: string }>(
    `SELECT (extract(epoch FROM finished_at - created_at) * 1000)::text AS ms FROM sous.execution
     WHERE recipe_name = $1 AND finished_at >= $2 AND finished_at < $3`,
    [recipeName, from, to],
  );
  const [running] = await probe.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM sous.execution WHERE recipe_name = $1 AND status = 'running'`,
    [recipeName],
  );
  const [slot] = await probe.query<{ lag: string | null }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS lag
     FROM pg_replication_slots WHERE slot_name = 'sous_outbox'`,
  );
  const lags = await admin.with(readCommandLag);
  const e2e = distribution(finished.map((r) => Number(r.ms)));
  return {
    minute,
    controlPlaneMiB: memoryOf(rig.controlPlanePid).rssMiB,
    workerMiB: memoryOf(rig.processes.worker).rssMiB,
    running: running?.n ?? 0,
    commandLag: lags.find((l) => l.capability === rig.capability)?.lag ?? 0,
    slotLagKiB: Number(slot?.lag ?? 0) / 1024,
    finishedPerSecond: finished.length / ((to.getTime() - from.getTime()) / 1000),
    e2eP50: e2e.p50,
    e2eP99: e2e.p99,
  };
}

function row(s: Sample): string {
  return [
    `#${String(s.minute).padStart(3)}`,
    `CP ${format(s.controlPlaneMiB)} MiB`,
    `worker ${format(s.workerMiB)} MiB`,
    `running ${s.running}`,
    `command lag ${s.commandLag}`,
    `slot lag ${format(s.slotLagKiB)} KiB`,
    `finished ${format(s.finishedPerSecond)}/s`,
    `e2e p50 ${format(s.e2eP50)} ms p99 ${format(s.e2eP99)} ms`,
  ].join('  ');
}

// Growth: the median of the last third against the median of the first third (the first
// sample left out: JIT, caches and pools are still filling). A figure grows when it rose by
// both more than a fifth and more than its noise floor.
const FLOORS: Record<Exclude<keyof Sample, 'minute' | 'finishedPerSecond'>, number> = {
  controlPlaneMiB: 20,
  workerMiB: 20,
  running: 2 * perSecond,
  commandLag: 2 * rate,
  slotLagKiB: 1024,
  e2eP50: 50,
  e2eP99: 100,
};
const steady = samples.slice(1);
const third = Math.max(1, Math.floor(steady.length / 3));
console.log(`\nsoak figures (${samples.length} samples; growth = last third's median vs the first third's):`);
const verdicts: Record<string, { first: number; last: number; grows: boolean }> = {};
for (const [figure, floor] of Object.entries(FLOORS) as [keyof typeof FLOORS, number][]) {
  const first = median(steady.slice(0, third).map((s) => s[figure]));
  const last = median(steady.slice(-third).map((s) => s[figure]));
  const grows = steady.length >= 3 && last > first * 1.2 && last - first > floor;
  verdicts[figure] = { first, last, grows };
  console.log(
    `  ${figure.padEnd(16)} ${format(first).padStart(9)} → ${format(last).padStart(9)}  ${grows ? 'GROWS' : 'flat'}`,
  );
}
console.log(`  executions ended other than completed: ${failed}`);
const out = join(config.root, '.cache', 'bench');
mkdirSync(out, { recursive: true });
writeFileSync(
  join(out, 'soak.json'),
  `${JSON.stringify({ at: new Date().toISOString(), settings, rate, samples, verdicts, failed }, null, 2)}\n`,
);
console.log(`written to ${join(out, 'soak.json')}`);
process.exit(Object.values(verdicts).some((v) => v.grows) || failed > 0 ? 1 : 0);
