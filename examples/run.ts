// npm start: brings the stack up, runs a control plane and the example services, and
// drives the example recipes end to end through the public API, printing progress.
// With SOUS_DATABASE_URL and SOUS_KAFKA_BROKERS set it uses that stack instead (one
// started by docker compose, say) and starts nothing of its own.
import { readFileSync } from 'node:fs';
import { sql } from 'kysely';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  buildApi,
  createControlPlane,
  createDatabase,
  getExecution,
  loadSecurityConfig,
  serveApi,
  SousError,
  startTracing,
  type SecurityConfig,
  type Tracing,
} from 'sous';
import { parseRecipeYaml } from 'sous/recipe';
import { createWorker } from 'sous/worker';
import { storedAdminToken } from '../src/api/stored-token.js';
import { redactConnectionString } from '../src/security/redact.js';
import { connectUrl, databaseUrl, kafkaBrokers, loadStackConfig } from '../src/stack/config.js';
import { stackUp } from '../src/stack/stack.js';
import * as migration from './services/migration.js';
import * as shop from './services/shop.js';

const say = (line: string) => process.stdout.write(`${line}\n`);
// First, so every span of the run is recorded (when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_TRACES_EXPORTER asks for it; the control plane, the API and the services of this
// one process share it).
let tracing: Tracing;
try {
  tracing = startTracing({ serviceName: 'sous-example' });
} catch (error) {
  process.stderr.write(
    `npm start: ${error instanceof SousError ? `${error.code}: ${error.message}` : String(error)}\n`,
  );
  process.exit(2);
}
say(`[sous] ${tracing.description}`);
const config = loadStackConfig();
const external = process.env.SOUS_DATABASE_URL !== undefined && process.env.SOUS_KAFKA_BROKERS !== undefined;
if (!external && (process.env.SOUS_DATABASE_URL ?? process.env.SOUS_KAFKA_BROKERS) !== undefined) {
  process.stderr.write(
    'npm start: set both SOUS_DATABASE_URL and SOUS_KAFKA_BROKERS to use a running stack, or neither\n',
  );
  process.exit(2);
}
const dbUrl = process.env.SOUS_DATABASE_URL ?? databaseUrl(config);
// Secure connections to an external stack (README, "Secure connections"), read once.
let security: SecurityConfig;
try {
  security = loadSecurityConfig();
} catch (error) {
  process.stderr.write(
    `npm start: ${error instanceof SousError ? `${error.code}: ${error.message}` : String(error)}\n`,
  );
  process.exit(2);
}
const pgSecurity = {
  ...(security.postgres === undefined ? {} : { databaseTls: security.postgres }),
  ...(security.postgresPassword === undefined ? {} : { databasePassword: security.postgresPassword }),
};
const kafkaSecurity = security.kafka;
// The example reads executions through a database handle of its own, as an application would.
const db = createDatabase({
  connectionString: dbUrl,
  ...(security.postgres === undefined ? {} : { tls: security.postgres }),
  ...(security.postgresPassword === undefined ? {} : { password: security.postgresPassword }),
  applicationName: 'sous-example',
  poolSize: 2,
});
const brokers = process.env.SOUS_KAFKA_BROKERS?.split(',').map((b) => b.trim()) ?? kafkaBrokers(config);
if (external)
  say(
    `[stack] using the stack at ${redactConnectionString(dbUrl)} and ${brokers.join(',')} (SOUS_DATABASE_URL, SOUS_KAFKA_BROKERS)`,
  );
else await stackUp(config, (line) => say(`[stack] ${line}`));

// The control plane restarts the outbox connector when Debezium gives up (e.g. after a PostgreSQL restart).
const connect = external ? process.env.SOUS_CONNECT_URL : connectUrl(config);
const controlPlane = createControlPlane({
  databaseUrl: dbUrl,
  ...pgSecurity,
  brokers,
  kafkaSecurity,
  ...(connect === undefined ? {} : { connectUrl: connect }),
});
await controlPlane.start();
say('[sous] control plane running');

// Two services, as they would be deployed: the shop as two shards (two processes in one
// consumer group, sharing its commands) and the migration as one. Every worker process is
// a shard of the registry: it announces its capabilities, region, health and load, and the
// control plane routes each step by that live view. Each serves its own /metrics,
// /healthz and /readyz on a free port (metricsPort 0); process metrics come once, from the API's registry.
const shopShard = (id: string) =>
  createWorker({
    brokers,
    kafkaSecurity,
    capabilities: Object.values(shop),
    groupId: 'example-shop',
    workerId: id,
    concurrency: 8,
    metricsPort: 0,
    processMetrics: false,
  });
const workers = [
  shopShard('shop-1'),
  shopShard('shop-2'),
  createWorker({
    brokers,
    kafkaSecurity,
    capabilities: Object.values(migration),
    groupId: 'example-migration',
    workerId: 'migration-1',
    concurrency: 8,
    metricsPort: 0,
    processMetrics: false,
  }),
];
await Promise.all(workers.map((w) => w.start()));
say('[sous] example services running: shop (inventory, payments, shipping, customers) as two shards, migration as one');
for (const w of workers) {
  say(`[sous] shard ${w.workerId} metrics at ${w.probesUrl ?? '?'}/metrics, health at /healthz and /readyz`);
}
// The registry as the control plane sees it (GraphQL: { shards { id health inFlight } }).
for (let i = 0; i < 50 && controlPlane.shards().length < workers.length; i++) await sleep(100);
for (const s of controlPlane.shards().sort((a, b) => a.shardId.localeCompare(b.shardId))) {
  say(
    `[sous] registry: ${s.shardId.padEnd(12)} ${s.health.padEnd(8)} ${s.region ?? 'any region'}, ${s.capabilities.map((c) => `${c.name}@${c.version}`).join(' ')}`,
  );
}
// An operator drains shop-1 (as before a redeploy; GraphQL drainShard): it finishes what it
// runs and takes nothing new, so the orders below all run on shop-2.
await controlPlane.drainShard('shop-1', 'npm-start');
for (let i = 0; i < 100 && workers[0]?.health() !== 'draining'; i++) await sleep(100);
say(`[sous] drained shop-1 (now ${workers[0]?.health() ?? '?'}): the orders below run on shop-2`);

for (const file of ['order-saga.yaml', 'data-migration.yaml']) {
  const plan = parseRecipeYaml(readFileSync(join(import.meta.dirname, 'recipes', file), 'utf8'));
  const registered = await controlPlane.registerRecipe(plan);
  say(
    `[sous] recipe ${registered.name} v${registered.version}${registered.created ? ' registered' : ' (already registered)'}`,
  );
}

/** Prints each step as its status changes, until the execution ends. */
async function follow(executionId: string, label: string) {
  const seen = new Map<string, string>();
  for (;;) {
    const view = await getExecution(db, executionId);
    for (const step of view.steps) {
      if (seen.get(step.stepKey) !== step.status) {
        seen.set(step.stepKey, step.status);
        say(
          `  ${label} ${step.stepKey.padEnd(22)} ${step.status}${step.attempts > 1 ? ` (attempt ${step.attempts})` : ''}`,
        );
      }
    }
    if (['completed', 'failed', 'cancelled', 'timed_out'].includes(view.status)) {
      say(`  ${label} → ${view.status}: ${JSON.stringify(view.status === 'completed' ? view.output : view.error)}`);
      return view;
    }
    await sleep(50);
  }
}

const run = Date.now().toString(36);
const runs = [
  {
    label: '[order ok]      ',
    recipe: 'order-saga',
    input: { orderId: `o-${run}-1`, sku: 'KETTLE', quantity: 2, card: '4242-4242-4242-4242' },
  },
  {
    label: '[order declined]',
    recipe: 'order-saga',
    input: { orderId: `o-${run}-2`, sku: 'TOASTER', quantity: 1, card: '4000-0000-0000-0002' },
  },
  { label: '[migration]     ', recipe: 'data-migration', input: { table: 'orders', snapshotFirst: true } },
];
let failures = 0;
const started: string[] = [];
for (const r of runs) {
  const one = await controlPlane.startExecution({
    recipe: r.recipe,
    input: r.input,
    idempotencyKey: `${r.recipe}-${run}-${r.label.trim()}`,
  });
  started.push(one.executionId);
  say(`[sous] ${r.label} started ${one.executionId}`);
  const begin = performance.now();
  const view = await follow(one.executionId, r.label);
  say(`[sous] ${r.label} took ${Math.round(performance.now() - begin)} ms`);
  const expected = r.input.card === '4000-0000-0000-0002' ? 'failed' : 'completed';
  if (view.status !== expected) failures++;
  // A declined order is compensated first, then its customer is told (the saga's onFailure step).
  if (expected === 'failed') {
    const keys = view.steps.map((s) => `${s.stepKey}:${s.status}`);
    const told = keys.indexOf('notifyCustomer:completed');
    if (told < 0 || told < keys.indexOf('reserve~compensate:completed')) failures++;
    else say(`  ${r.label} the customer was notified after the compensations`);
  }
}

// Which shard ran the shop's steps: all on shop-2 while shop-1 drained. Then shop-1 resumes.
const ranOn = await sql<{ worker_id: string; attempts: string }>`
  SELECT worker_id, count(*) AS attempts FROM sous.step_attempt
  WHERE execution_id = ANY(${started}::uuid[]) AND worker_id IS NOT NULL GROUP BY worker_id ORDER BY worker_id`.execute(
  db,
);
say(`[sous] attempts per shard: ${ranOn.rows.map((r) => `${r.worker_id} ${r.attempts}`).join(', ')}`);
await controlPlane.resumeShard('shop-1', 'npm-start');
for (let i = 0; i < 100 && workers[0]?.health() !== 'healthy'; i++) await sleep(100);
say(`[sous] resumed shop-1 (now ${workers[0]?.health() ?? '?'})`);

say(
  failures === 0 ? '[sous] all example runs ended as expected' : `[sous] ${failures} example run(s) ended unexpectedly`,
);
process.exitCode = failures === 0 ? 0 : 1;

// The GraphQL API over the same control plane; the example services keep running, so
// recipes started through the API run to their end.
const api = await buildApi({ controlPlane, databaseUrl: dbUrl, ...pgSecurity, graphiql: true });
const port = Number(process.env.SOUS_API_PORT ?? 4000);
const url = await serveApi(api, { port });
// One admin token per stack, kept beside its data: every run prints the same one.
const tokenFile = join(config.stackDir, 'admin-token');
const admin = await storedAdminToken(db, tokenFile, 'npm-start');
say(`[sous] GraphQL API at ${url} (GraphiQL: ${url.replace(/graphql$/, 'graphiql')})`);
const base = url.replace(/\/graphql$/, '');
say(`[sous] operator console at ${base}/console (sign in with the admin token below)`);
say(
  `[sous] control-plane and API metrics at ${base}/metrics (Prometheus), liveness at ${base}/healthz, readiness at ${base}/readyz`,
);
say(`[sous] try: curl -s ${base}/metrics | grep '^sous_steps_completed_total'`);
say(
  `[sous] admin token (${admin.created ? 'new, stored' : 'stored'} in ${tokenFile}, reused by the next npm start): ${admin.token}`,
);
say(
  `[sous] try: curl -s ${url} -H 'authorization: Bearer ${admin.token}' -H 'content-type: application/json' -d '{"query":"{ executions(first: 3) { edges { node { id recipe status } } } }"}'`,
);
say('[sous] Ctrl-C stops the API, the services and the control plane; npm run stack:down stops the stack');

const shutdown = async () => {
  await api.close();
  await Promise.all(workers.map((w) => w.stop()));
  await controlPlane.stop();
  await db.destroy();
  await tracing.shutdown();
};
await new Promise<void>((resolve) => {
  process.once('SIGINT', () => resolve());
  process.once('SIGTERM', () => resolve());
});
await shutdown();
