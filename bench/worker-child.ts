// The bench's worker, in a process of its own so its CPU is its own (bench/proc.ts).
// Runs one capability whose handler notes when each command arrived and waits
// BENCH_SLOW_MS; on SIGTERM it stops the worker and writes when each command arrived and
// when its handler returned (`<executionId>/<stepKey>` → epoch ms) to BENCH_RECEIVED_FILE.
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { createWorker, defineCapability } from '../src/worker/index.js';

const env = z
  .object({
    BENCH_BROKERS: z.string().min(1),
    BENCH_CAPABILITY: z.string().min(1),
    BENCH_WORKER_GROUP: z.string().min(1),
    BENCH_RECEIVED_FILE: z.string().min(1),
    BENCH_SLOW_MS: z.coerce.number().int().min(0),
    BENCH_WORKER_CONCURRENCY: z.coerce.number().int().min(1),
    // 0: note no times (the soak: an hour of them would grow the worker's memory).
    BENCH_RECORD_TIMES: z.enum(['0', '1']).default('1'),
  })
  .parse(process.env);

const recordTimes = env.BENCH_RECORD_TIMES === '1';
const received = new Map<string, number>();
const handled = new Map<string, number>();
const step = defineCapability({
  name: env.BENCH_CAPABILITY,
  input: z.object({ n: z.number() }),
  output: z.object({ n: z.number() }),
  handler: async ({ n }, ctx) => {
    const key = ctx.itemIndex === undefined ? ctx.stepId : `${ctx.stepId}[${ctx.itemIndex}]`;
    if (recordTimes) received.set(`${ctx.executionId}/${key}`, Date.now());
    if (env.BENCH_SLOW_MS > 0) await sleep(env.BENCH_SLOW_MS);
    if (recordTimes) handled.set(`${ctx.executionId}/${key}`, Date.now());
    return { n: n + 1 };
  },
});
const worker = createWorker({
  brokers: env.BENCH_BROKERS.split(','),
  capabilities: [step],
  groupId: env.BENCH_WORKER_GROUP,
  concurrency: env.BENCH_WORKER_CONCURRENCY,
  handleSignals: false,
});
await worker.start();
process.stdout.write('worker ready\n');
process.once('SIGTERM', () => {
  worker.stop().then(
    () => {
      writeFileSync(
        env.BENCH_RECEIVED_FILE,
        JSON.stringify({ received: Object.fromEntries(received), handled: Object.fromEntries(handled) }),
      );
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`worker did not stop cleanly: ${String(error)}\n`);
      process.exit(1);
    },
  );
});
