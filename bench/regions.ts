// npm run bench:regions — figures of two regions on this machine: the relay's throughput
// and the step-to-step latency of steps crossing regions, beside steps that stay home.
// Needs two regions up: `npm run stack:up -- --regions a,b` (the first on the configured
// ports, the second derived). Prints figures; not a test. Settings: BENCH_RELAY_MESSAGES
// (10000), BENCH_EXECUTIONS (40, run one at a time so each step's latency is its own).
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { createControlPlane } from '../src/control-plane/control-plane.js';
import { getExecution } from '../src/control-plane/queries.js';
import { createKafka } from '../src/kafka/kafka-client.js';
import { createRecordProducer, type RecordToSend } from '../src/kafka/producer.js';
import { ensureTopics } from '../src/kafka/topics.js';
import { recipe } from '../src/recipe/builder.js';
import { regionStacks } from '../src/regions/region-stacks.js';
import { startRelay } from '../src/relay/relay.js';
import { relayTopicFor, routingHeaders } from '../src/relay/routing.js';
import { databaseUrl, kafkaBrokers, loadStackConfig } from '../src/stack/config.js';
import { createWorker } from '../src/worker/create-worker.js';
import { defineCapability, postgresPayloadStore } from '../src/worker/index.js';

const messages = Number(process.env.BENCH_RELAY_MESSAGES ?? 10_000);
const executions = Number(process.env.BENCH_EXECUTIONS ?? 40);
const tag = Date.now().toString(36);
const [homeStack, remoteStack] = regionStacks(loadStackConfig(), ['home', 'remote']).map((r) => r.config);
if (homeStack === undefined || remoteStack === undefined) throw new Error('two regions expected');
const homeDatabase = databaseUrl(homeStack);
const remoteDatabase = databaseUrl(remoteStack);
const homeBrokers = kafkaBrokers(homeStack);
const remoteBrokers = kafkaBrokers(remoteStack);
const home = `bh-${tag}`;
const remote = `br-${tag}`;

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}
const summary = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `p50 ${percentile(s, 50).toFixed(0)} ms, p99 ${percentile(s, 99).toFixed(0)} ms (n=${s.length})`;
};

async function relayThroughput(): Promise<void> {
  const source = createKafka({ brokers: remoteBrokers, clientId: `bench-${tag}` });
  const destination = createKafka({ brokers: homeBrokers, clientId: `bench-${tag}` });
  const target = `bench.relayed-${tag}`;
  await ensureTopics(source, [relayTopicFor(home)]);
  await ensureTopics(destination, [target]);
  const producer = createRecordProducer(source);
  const batch: RecordToSend[] = [];
  for (let i = 0; i < messages; i++) {
    batch.push({
      topic: relayTopicFor(home),
      key: `key-${i % 20}`,
      value: JSON.stringify({ i, pad: 'x'.repeat(200) }),
      headers: routingHeaders(home, target),
    });
  }
  for (let i = 0; i < batch.length; i += 1000) await producer.send(batch.slice(i, i + 1000));
  await producer.disconnect();
  let copied = 0;
  const relay = startRelay({
    region: home,
    brokers: homeBrokers,
    sources: [{ region: remote, brokers: remoteBrokers }],
    onCopied: (n) => (copied += n),
  });
  await relay.ready;
  const started = Date.now();
  while (copied < messages) await sleep(10);
  const seconds = (Date.now() - started) / 1000;
  await relay.stop();
  console.log(
    `relay: ${messages} messages (~250 B, 20 keys, 6 partitions, fetch 1 MiB per partition) in ${seconds.toFixed(2)} s = ${(messages / seconds).toFixed(0)} msg/s, one transaction per fetched batch`,
  );
}

async function crossRegionLatency(): Promise<void> {
  const relays = [
    startRelay({ region: remote, brokers: remoteBrokers, sources: [{ region: home, brokers: homeBrokers }] }),
    startRelay({ region: home, brokers: homeBrokers, sources: [{ region: remote, brokers: remoteBrokers }] }),
  ];
  await Promise.all(relays.map((r) => r.ready));
  const cp = createControlPlane({
    databaseUrl: homeDatabase,
    brokers: homeBrokers,
    replyTopic: `bench.replies-${tag}`,
    groupId: `bench-cp-${tag}`,
    region: home,
    remoteRegions: [remote],
    ingestDeadLetters: false,
  });
  await cp.start();
  // The remote region's control plane: crossing commands land in its inbox, and its
  // registry routes them to a shard there (one more outbox hop, in the remote region).
  const remoteCp = createControlPlane({
    databaseUrl: remoteDatabase,
    brokers: remoteBrokers,
    replyTopic: `bench.replies-${tag}`,
    groupId: `bench-remote-cp-${tag}`,
    region: remote,
    remoteRegions: [home],
    ingestDeadLetters: false,
    processMetrics: false,
  });
  await remoteCp.start();
  const store = postgresPayloadStore(remoteDatabase);
  const cap = (name: string) =>
    defineCapability({
      name,
      input: z.object({ n: z.number() }),
      output: z.object({ n: z.number() }),
      handler: async ({ n }) => Promise.resolve({ n: n + 1 }),
    });
  const workers = [
    createWorker({ brokers: homeBrokers, capabilities: [cap(`bench${tag}.home`)], region: home, handleSignals: false }),
    createWorker({
      brokers: remoteBrokers,
      capabilities: [cap(`bench${tag}.remote`)],
      region: remote,
      payloadStore: store,
      handleSignals: false,
    }),
  ];
  for (const w of workers) await w.start();
  const plan = recipe(`bench${tag}.cross`)
    .task('a', `bench${tag}.home`, { input: { n: 'input.n' } })
    .task('b', `bench${tag}.home`, { input: { n: 'outputs.a.n' } })
    .task('c', `bench${tag}.remote`, { input: { n: 'outputs.b.n' }, region: remote })
    .task('d', `bench${tag}.home`, { input: { n: 'outputs.b.n' } })
    .build();
  await cp.registerRecipe(plan);
  const local: number[] = [];
  const out: number[] = [];
  const back: number[] = [];
  for (let i = 0; i < executions; i++) {
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: { n: i } });
    for (;;) {
      const view = await getExecution(cp.db, executionId);
      if (view.status !== 'running') break;
      await sleep(20);
    }
    const rows = await cp.db
      .selectFrom('sous.step_attempt')
      .select(['step_key', 'finished_at'])
      .where('execution_id', '=', executionId)
      .execute();
    const at = new Map(rows.map((r) => [r.step_key, new Date(r.finished_at as unknown as string).getTime()]));
    const gap = (x: string, y: string) => (at.get(y) ?? NaN) - (at.get(x) ?? NaN);
    if (i > 0) {
      // The first execution warms consumers and connections up.
      local.push(gap('a', 'b'));
      out.push(gap('b', 'c'));
      back.push(gap('c', 'd'));
    }
  }
  // A step's latency is from the previous step's end to its own end (as the home region
  // records them): a remote step's includes its command's relay out and its reply's back.
  console.log(`home step after a home step:                            ${summary(local)}`);
  console.log(`remote step after a home step (relayed out and back):   ${summary(out)}`);
  console.log(`home step after a remote step:                          ${summary(back)}`);
  for (const w of workers) await w.stop();
  await remoteCp.stop();
  await cp.stop();
  await store.close();
  for (const r of relays) await r.stop();
}

await relayThroughput();
await crossRegionLatency();
process.exit(0);
