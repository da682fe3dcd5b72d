// Steps across two real regions: the execution lives in the home region (its control
// plane, PostgreSQL and Kafka); a step resident in the other region goes through the
// outbox to the home cluster's relay topic, the other region's relay carries it into its
// cluster, a shard of that region runs it, and its reply comes home the same way.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { createControlPlane, type ControlPlane } from '../../src/control-plane/control-plane.js';
import { createKafka } from '../../src/kafka/kafka-client.js';
import { recipe } from '../../src/recipe/index.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import { createDatabase } from '../../src/db/database.js';
import type { Database } from '../../src/db/schema.js';
import type { Kafka } from '../../src/kafka/kafka-client.js';
import { startRelay, type Relay } from '../../src/relay/relay.js';
import { createWorker } from '../../src/worker/create-worker.js';
import { defineCapability } from '../../src/worker/index.js';
import { startTestControlPlane, waitForExecution } from '../helpers/control-plane.js';
import { getExecution, type ExecutionView } from '../../src/control-plane/queries.js';
import { homeBrokers, remoteBrokers, stopRemoteRegion, useRemoteRegion } from '../helpers/regions.js';
import { testDatabase, testKafka, uniqueName } from '../helpers/stack.js';
import { databaseUrl } from '../../src/stack/config.js';
import { postgresPayloadStore, type PayloadStore } from '../../src/worker/index.js';
import { remoteStack } from '../helpers/regions.js';
import { sql } from 'kysely';
import { RESIDENCY_VIOLATION } from '../../src/protocol/resident.js';
import { regionInboxTopic } from '../../src/regions/region-inbox.js';
import { selectInboxStates } from '../../src/store/region-inbox.js';
import { ResidencyConflictError } from '../../src/regions/residency-check.js';
import { registerRecipe } from '../../src/control-plane/recipes.js';

const home = uniqueName('home');
const remote = uniqueName('remote');
const ns = uniqueName('rg').replaceAll('-', '');
const homeCap = `test${ns}.home`;
const remoteCap = `test${ns}.remote`;
const cleanup: (() => Promise<unknown>)[] = [];
let cp: ControlPlane & { replyTopic: string };
const homeShard = uniqueName('home-shard');
const remoteShard = uniqueName('remote-shard');

/** Handler runs per idempotency key (one per step of an execution): an effect applied twice shows here. */
const runs = new Map<string, number>();
// `prev`: an earlier step's whole output, which a resident output reaches as a claim
// check that the SDK of the same region resolves.
const addOne = (name: string, shard: string) =>
  defineCapability({
    name,
    input: z.object({ n: z.number().optional(), prev: z.object({ n: z.number() }).optional() }),
    output: z.object({ n: z.number(), at: z.string() }),
    handler: async ({ n, prev }, ctx) => {
      runs.set(ctx.idempotencyKey, (runs.get(ctx.idempotencyKey) ?? 0) + 1);
      return Promise.resolve({ n: (prev?.n ?? n ?? 0) + 1, at: shard });
    },
  });
// Runs until cancelled: which executions' handlers started, and which saw the abort.
const waitCap = `test${ns}.wait`;
const waitStarted = new Set<string>();
const waitAborted = new Set<string>();
const waitUntilCancelled = defineCapability({
  name: waitCap,
  input: z.object({}),
  output: z.object({}),
  handler: (_input, ctx) =>
    new Promise((resolve, reject) => {
      waitStarted.add(ctx.executionId);
      const timer = setTimeout(() => resolve({}), 90_000);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        waitAborted.add(ctx.executionId);
        reject(ctx.signal.reason instanceof Error ? ctx.signal.reason : new Error('aborted'));
      });
    }),
});
const secretCap = `test${ns}.secret`;
const readSecretCap = `test${ns}.readsecret`;
const marker = uniqueName('resident-secret');
const secret = defineCapability({
  name: secretCap,
  input: z.object({}),
  output: z.object({ secret: z.string() }),
  handler: async () => Promise.resolve({ secret: marker }),
});
const readSecret = defineCapability({
  name: readSecretCap,
  input: z.object({ prev: z.object({ secret: z.string() }) }),
  output: z.object({ matches: z.boolean() }),
  handler: async ({ prev }) => Promise.resolve({ matches: prev.secret === marker }),
});
let remoteStore: PayloadStore;
let intoRemote: Relay;
/** The remote region's control plane: commands from home land in its inbox, its registry picks the shard. */
let remoteCp: ControlPlane | undefined;
const remoteCpGroup = uniqueName('remote-control-plane');

async function stopRemoteControlPlane(): Promise<void> {
  const running = remoteCp;
  remoteCp = undefined;
  await running?.stop();
}

async function startRemoteControlPlane(groupId: string): Promise<void> {
  const remoteControlPlane = createControlPlane({
    databaseUrl: databaseUrl(remoteStack),
    brokers: remoteBrokers,
    region: remote,
    remoteRegions: [home],
    replyTopic: uniqueName('test.replies'),
    groupId,
    poolSize: 3,
    ingestDeadLetters: false,
    processMetrics: false,
    waitingSweepMs: 500,
  });
  await remoteControlPlane.start();
  remoteCp = remoteControlPlane;
}

/** The remote region's relay (it reads the home cluster's sous.relay-<remote>). */
function relayIntoRemote(): Relay {
  const relay = startRelay({
    region: remote,
    brokers: remoteBrokers,
    sources: [{ region: home, brokers: homeBrokers }],
  });
  cleanup.push(() => relay.stop());
  return relay;
}

before(async () => {
  await useRemoteRegion();
  // The remote region's payload store: resident outputs stay in its PostgreSQL.
  remoteStore = postgresPayloadStore(databaseUrl(remoteStack));
  cleanup.push(() => remoteStore.close());
  intoRemote = relayIntoRemote();
  const intoHome = startRelay({
    region: home,
    brokers: homeBrokers,
    sources: [{ region: remote, brokers: remoteBrokers }],
  });
  cleanup.push(() => intoHome.stop());
  await Promise.all([intoRemote.ready, intoHome.ready]);
  // Both regions' control planes at once (each reads its registry and joins its groups).
  [cp] = await Promise.all([
    startTestControlPlane({ region: home, remoteRegions: [remote], waitingSweepMs: 500 }),
    startRemoteControlPlane(remoteCpGroup),
  ]);
  cleanup.push(() => cp.stop());
  cleanup.push(stopRemoteControlPlane);
  const workers = [
    createWorker({
      kafka: testKafka(),
      capabilities: [addOne(homeCap, homeShard), readSecret],
      groupId: uniqueName('home-workers'),
      workerId: homeShard,
      region: home,
      heartbeatIntervalMs: 500,
      handleSignals: false,
    }),
    createWorker({
      kafka: createKafka({ brokers: remoteBrokers, clientId: uniqueName('remote-worker') }),
      capabilities: [addOne(remoteCap, remoteShard), secret, readSecret, waitUntilCancelled],
      payloadStore: remoteStore,
      groupId: uniqueName('remote-workers'),
      workerId: remoteShard,
      region: remote,
      heartbeatIntervalMs: 500,
      handleSignals: false,
    }),
  ];
  await Promise.all(workers.map((worker) => worker.start()));
  for (const worker of workers) cleanup.push(() => worker.stop());
});

after(async () => {
  for (const step of cleanup.reverse()) await step();
  await stopRemoteRegion();
});

describe('steps across regions', () => {
  it('completes a recipe alternating home and remote steps; the home region sees every step and the shard that ran it', async () => {
    const plan = recipe(`${ns}.alternate`)
      .task('a', homeCap, { input: { n: 'input.n' } })
      .task('b', remoteCap, { input: { n: 'outputs.a.n' }, region: remote })
      .task('c', homeCap, { input: { n: 'outputs.a.n' } })
      .task('d', remoteCap, { input: { prev: 'outputs.b' }, region: remote })
      .output('outputs.d')
      .build();
    await cp.registerRecipe(plan);
    const runs = 5;
    const started = await Promise.all(
      [...Array(runs).keys()].map((i) => cp.startExecution({ recipe: plan.name, input: { n: i * 10 } })),
    );
    for (const [i, { executionId }] of started.entries()) {
      const view = await waitForExecution(cp, executionId, undefined, 120_000);
      assert.equal(view.status, 'completed', JSON.stringify(view));
      // d's output is resident: home holds its claim check, the value is in the remote region.
      const check = z
        .object({ $resident: z.object({ ref: z.string(), region: z.literal(remote) }) })
        .parse(view.output);
      assert.deepEqual(await remoteStore.fetch(check.$resident.ref), { n: i * 10 + 3, at: remoteShard });
    }
    const attempts = await cp.db
      .selectFrom('sous.step_attempt')
      .select(['execution_id', 'step_key', 'worker_id', 'status', 'region', 'scheduled_at', 'finished_at'])
      .where(
        'execution_id',
        'in',
        started.map((s) => s.executionId),
      )
      .execute();
    assert.equal(attempts.length, runs * 4, 'one attempt per step: nothing ran twice');
    for (const a of attempts) {
      assert.equal(a.status, 'completed');
      assert.equal(a.worker_id, a.step_key === 'b' || a.step_key === 'd' ? remoteShard : homeShard, JSON.stringify(a));
    }
    // Step-to-step: from the previous step's end to this step's end (handlers take no time).
    const ms = (x: unknown) => new Date(x as string).getTime();
    const cross: number[] = [];
    for (const { executionId } of started) {
      const at = new Map(
        attempts.filter((s) => s.execution_id === executionId).map((s) => [s.step_key, ms(s.finished_at)]),
      );
      for (const [prev, next] of [
        ['a', 'b'],
        ['c', 'd'],
      ] as const)
        cross.push((at.get(next) ?? 0) - (at.get(prev) ?? 0));
    }
    cross.sort((x, y) => x - y);
    process.stderr.write(`[regions] cross-region step-to-step ms: ${cross.join(', ')}\n`);
  });

  it('keeps a resident output in its region: later steps there read it by reference, a step elsewhere is refused at registration or fails with residency_violation, and no topic or table of the home region holds its bytes', async () => {
    const kept = recipe(`${ns}.resident`)
      .task('s', secretCap, { input: '{}', region: remote })
      .task('t', readSecretCap, { input: { prev: 'outputs.s' }, region: remote })
      .output('outputs.t')
      .build();
    const leaked = recipe(`${ns}.leak`)
      .task('s', secretCap, { input: '{}', region: remote })
      .task('u', readSecretCap, { input: { prev: 'outputs.s' }, retry: { maxAttempts: 1 } })
      .build();
    await cp.registerRecipe(kept);
    // Refused at registration, naming both steps...
    await assert.rejects(cp.registerRecipe(leaked), (error: unknown) => {
      assert.ok(error instanceof ResidencyConflictError);
      assert.equal(error.code, 'SOUS_RESIDENCY_CONFLICT');
      assert.deepEqual(
        error.conflicts.map((c) => [c.reader, c.resident, c.residentRegion]),
        [['u', 's', remote]],
      );
      return true;
    });
    // ...and, registered without the check (a control plane before it, or without
    // regions), still refused at run time: the home step fails with residency_violation.
    await registerRecipe(cp.db, leaked);
    const ok = await cp.startExecution({ recipe: kept.name, input: {} });
    const bad = await cp.startExecution({ recipe: leaked.name, input: {} });
    const okView = await waitForExecution(cp, ok.executionId, undefined, 120_000);
    assert.equal(okView.status, 'completed', JSON.stringify(okView));
    const okRef = z.object({ $resident: z.object({ ref: z.string() }) }).parse(okView.output);
    assert.deepEqual(await remoteStore.fetch(okRef.$resident.ref), { matches: true });
    const badView = await waitForExecution(cp, bad.executionId, undefined, 120_000);
    assert.equal(badView.status, 'failed', JSON.stringify(badView));
    const failed = await cp.db
      .selectFrom('sous.step_attempt')
      .select(['step_key', 'error'])
      .where('execution_id', '=', bad.executionId)
      .where('step_key', '=', 'u')
      .executeTakeFirstOrThrow();
    assert.equal((failed.error as { code?: string } | null)?.code, RESIDENCY_VIOLATION, JSON.stringify(failed));

    // The bytes exist in the remote region (so the scan below can find them)...
    const remoteDb = createDatabase({ connectionString: databaseUrl(remoteStack), applicationName: 'regions-test' });
    try {
      assert.ok((await tablesHolding(remoteDb, marker)).includes('sous_payload.payload'));
    } finally {
      await remoteDb.destroy();
    }
    // ...and nowhere in the home region: no table of its PostgreSQL, no topic of its Kafka.
    const homeDb = testDatabase();
    try {
      assert.deepEqual(await tablesHolding(homeDb, marker), []);
    } finally {
      await homeDb.destroy();
    }
    // One scan for both: the claim check's id is in the home reply topic (the scan finds
    // what is there), the resident bytes are nowhere.
    const found = await topicsHolding(testKafka(), [marker, okRef.$resident.ref]);
    assert.ok(found.get(okRef.$resident.ref)?.includes(cp.replyTopic), JSON.stringify([...found]));
    assert.deepEqual(found.get(marker), []);
  });

  it('a remote step waits, visibly scheduled in the home region, while the remote region is cut off, and completes when it is back', async () => {
    const plan = recipe(`${ns}.cutoff`)
      .task('a', homeCap, { input: { n: 'input.n' } })
      .task('b', remoteCap, { input: { n: 'outputs.a.n' }, region: remote })
      .build();
    await cp.registerRecipe(plan);
    await intoRemote.stop();
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: { n: 1 } });
    const statusOf = (view: ExecutionView, key: string) => view.steps.find((st) => st.stepKey === key)?.status;
    await waitForExecution(cp, executionId, (v) => statusOf(v, 'b') === 'scheduled', 60_000);
    await sleep(3_000);
    const waiting = await getExecution(cp.db, executionId);
    assert.equal(waiting.status, 'running');
    assert.equal(statusOf(waiting, 'b'), 'scheduled', 'the command waits in the home cluster, not lost, not failed');
    intoRemote = relayIntoRemote();
    await intoRemote.ready;
    const done = await waitForExecution(cp, executionId, undefined, 120_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
  });

  it("a remote step waits, visibly dispatched to the remote region, while that region's control plane is down, and runs once when it returns", async () => {
    const plan = recipe(`${ns}.cpdown`)
      .task('a', homeCap, { input: { n: 'input.n' } })
      .task('b', remoteCap, { input: { n: 'outputs.a.n' }, region: remote })
      .build();
    await cp.registerRecipe(plan);
    await stopRemoteControlPlane();
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: { n: 7 } });
    const attemptOf = () =>
      cp.db
        .selectFrom('sous.step_attempt')
        .select(['id', 'status', 'region', 'worker_id'])
        .where('execution_id', '=', executionId)
        .where('step_key', '=', 'b')
        .executeTakeFirst();
    const deadline = Date.now() + 60_000;
    while ((await attemptOf()) === undefined) {
      assert.ok(Date.now() < deadline, 'step b was never dispatched');
      await sleep(100);
    }
    // The command crossed (the relay runs) and waits in the remote region's inbox: the
    // remote control plane's group lags behind it.
    let lag = 0;
    while ((lag = await inboxLag(remoteCpGroup)) === 0) {
      assert.ok(Date.now() < deadline, 'the command never reached the remote inbox');
      await sleep(200);
    }
    await sleep(1_000);
    // Home shows it: the attempt is dispatched to the remote region, not taken by any shard.
    const waiting = await attemptOf();
    assert.deepEqual(
      { status: waiting?.status, region: waiting?.region, worker: waiting?.worker_id },
      { status: 'scheduled', region: remote, worker: null },
    );
    assert.equal((await getExecution(cp.db, executionId)).status, 'running');
    assert.ok((await inboxLag(remoteCpGroup)) >= lag, 'nothing took the command meanwhile');
    // Back under a new group, which reads the inbox from its beginning: every command of
    // this file arrives a second time, and the inbox rows make those change nothing.
    await startRemoteControlPlane(uniqueName('remote-control-plane'));
    const done = await waitForExecution(cp, executionId, undefined, 120_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const ran = await attemptOf();
    assert.ok(ran !== undefined);
    assert.equal(ran.worker_id, remoteShard);
    const remoteDb = createDatabase({ connectionString: databaseUrl(remoteStack), applicationName: 'regions-test' });
    try {
      assert.equal((await selectInboxStates(remoteDb, [ran.id])).get(ran.id), 'dispatched');
    } finally {
      await remoteDb.destroy();
    }
    // Redelivered commands still on their way would show up as second runs.
    await sleep(1_000);
    const twice = [...runs].filter(([, n]) => n !== 1);
    assert.deepEqual(twice, [], 'no step of this file ran twice');
    assert.equal(runs.get(`${executionId}/b`), 1);
  });

  it('cancelling an execution whose step runs in the remote region aborts the handler there, and the execution ends cancelled', async () => {
    const plan = recipe(`${ns}.cancel`).task('w', waitCap, { input: '{}', region: remote }).build();
    await cp.registerRecipe(plan);
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: {} });
    const deadline = Date.now() + 60_000;
    while (!waitStarted.has(executionId)) {
      assert.ok(Date.now() < deadline, 'the remote handler never started');
      await sleep(100);
    }
    await cp.cancelExecution(executionId, 'test cancels it');
    const view = await waitForExecution(cp, executionId, undefined, 60_000);
    assert.equal(view.status, 'cancelled', JSON.stringify(view));
    while (!waitAborted.has(executionId)) {
      assert.ok(Date.now() < deadline, "the cancel never reached the remote worker's handler");
      await sleep(100);
    }
  });
});

/** Records of the remote region's inbox that its control plane's group `groupId` has not read. */
async function inboxLag(groupId: string): Promise<number> {
  const admin = createKafka({ brokers: remoteBrokers, clientId: uniqueName('lag') }).admin();
  await admin.connect();
  try {
    const topic = regionInboxTopic(remote);
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    let lag = 0;
    for (const end of ends) {
      const at = committed?.partitions.find((p) => p.partition === end.partition)?.offset ?? '-1';
      lag += Number(end.high) - (at === '-1' ? Number(end.low) : Number(at));
    }
    return lag;
  } finally {
    await admin.disconnect();
  }
}

/** Every base table of the database whose rows, as text, hold `needle`. */
async function tablesHolding(db: Kysely<Database>, needle: string): Promise<string[]> {
  const tables = await sql<{ name: string }>`
    SELECT format('%I.%I', table_schema, table_name) AS name FROM information_schema.tables
    WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`.execute(db);
  const holding: string[] = [];
  for (const { name } of tables.rows) {
    const found = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM ${sql.raw(name)} t WHERE t::text LIKE ${`%${needle}%`}`.execute(db);
    if ((found.rows[0]?.n ?? 0) > 0) holding.push(name);
  }
  return holding;
}

/** Per needle, every topic of the cluster (internal ones too, aborted records too) holding it in a key, value or header. */
async function topicsHolding(kafka: Kafka, needles: readonly string[]): Promise<Map<string, string[]>> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<string, bigint>();
  try {
    for (const topic of await admin.listTopics()) {
      for (const o of await admin.fetchTopicOffsets(topic)) {
        if (BigInt(o.high) > BigInt(o.low)) ends.set(`${topic}/${o.partition}`, BigInt(o.high));
      }
    }
  } finally {
    await admin.disconnect();
  }
  const holding = new Map(needles.map((n) => [n, new Set<string>()]));
  const topics = [...new Set([...ends.keys()].map((k) => k.slice(0, k.lastIndexOf('/'))))];
  const consumer = kafka.consumer({ groupId: uniqueName('residency-scan'), readUncommitted: true });
  let lastBatchAt = Date.now();
  await consumer.connect();
  try {
    await consumer.subscribe({ topics, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) {
          const parts = [m.key, m.value, ...Object.values(m.headers ?? {}).flat()];
          for (const [needle, where] of holding) {
            if (parts.some((p) => Buffer.isBuffer(p) && p.includes(needle))) where.add(batch.topic);
          }
        }
        lastBatchAt = Date.now();
        const key = `${batch.topic}/${batch.partition}`;
        const end = ends.get(key);
        if (end !== undefined && BigInt(batch.lastOffset()) + 1n >= end) ends.delete(key);
        await Promise.resolve();
      },
    });
    const deadline = Date.now() + 120_000;
    // A partition may end in a transaction marker, which no consumer sees: such a
    // partition is done when nothing more came for a while.
    while (ends.size > 0 && Date.now() - lastBatchAt < 5_000) {
      if (Date.now() > deadline) throw new Error(`scan did not reach the end of ${[...ends.keys()].join(', ')}`);
      await sleep(100);
    }
  } finally {
    await consumer.disconnect();
  }
  return new Map([...holding].map(([needle, where]) => [needle, [...where]]));
}
