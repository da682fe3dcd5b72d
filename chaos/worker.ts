// A service process for the chaos run: every step applies its side effect through
// withExactlyOnce (one row in the effect table per idempotency key, or the run failed),
// except a step asked to fail, which fails for good without one.
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { z } from 'zod';
import { createDatabase } from '../src/db/database.js';
import {
  createWorker,
  defineCapability,
  installExactlyOnce,
  terminalError,
  withExactlyOnce,
} from '../src/worker/index.js';

const env = z
  .object({
    CHAOS_BROKERS: z.string().min(1),
    CHAOS_DATABASE_URL: z.string().min(1),
    CHAOS_CAPABILITY: z.string().min(1),
    CHAOS_GROUP: z.string().min(1),
    CHAOS_TABLE: z.string().regex(/^[a-z_0-9]+$/),
    CHAOS_STEP_MS: z.coerce.number().int().nonnegative().default(5),
  })
  .parse(process.env);

const db = createDatabase({
  connectionString: env.CHAOS_DATABASE_URL,
  poolSize: 6,
  applicationName: 'sous-chaos-worker',
});
await installExactlyOnce(db);
const table = sql.table(`sous_worker.${env.CHAOS_TABLE}`);

const step = defineCapability({
  name: env.CHAOS_CAPABILITY,
  input: z.object({ n: z.number(), fail: z.boolean().optional() }),
  output: z.object({ n: z.number() }),
  handler: async ({ n, fail }, ctx) => {
    await sleep(env.CHAOS_STEP_MS);
    // The saga's last step: fails for good, with no effect, so the compensations run.
    if (fail === true) throw terminalError('chaos.declined', 'this step always fails (the chaos saga)');
    return withExactlyOnce(db, ctx, async (trx) => {
      await sql`INSERT INTO ${table} (idempotency_key, execution_id) VALUES (${ctx.idempotencyKey}, ${ctx.executionId})`.execute(
        trx,
      );
      return { n: n + 1 };
    });
  },
});

const worker = createWorker({
  brokers: env.CHAOS_BROKERS.split(','),
  capabilities: [step],
  groupId: env.CHAOS_GROUP,
  concurrency: 8,
  // A broker restart can outlast a few in-process attempts: retry longer before the DLT.
  maxDeliveryAttempts: 20,
});
await worker.start();
process.stdout.write('worker ready\n');
