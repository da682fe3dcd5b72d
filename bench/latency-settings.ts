// npm run bench:latency — the latency settings of the step path, each measured back to back
// on the running stack: commit → consumed latency one row at a time (p50/p99), and what the
// setting costs when nothing happens (CPU of the broker, Connect, PostgreSQL and the consuming
// process over an idle window, from /proc).
//
// Groups (BENCH_LATENCY_GROUPS, comma list; all by default):
//   poll      Debezium poll.interval.ms (the connector is reconfigured through Connect's REST
//             API and restored to connectors/outbox-connector.json at the end)
//   batch     Debezium max.batch.size, with a burst of rows (rows/s and latency under load)
//   consumer  kafkajs consumer maxWaitTimeInMs / minBytes
//   linger    a producer's linger: replies held this long to go out together (kafkajs has
//             no linger of its own; the worker's reply sender would hold them)
// Sizes: BENCH_LATENCY_ROWS 200 (rows one at a time per setting), BENCH_IDLE_SECONDS 60,
// BENCH_BURST_ROWS 10000, BENCH_LINGER_SECONDS 10, BENCH_POLL_VALUES 1,5,10,50. Prints a table per group and writes
// .cache/bench/latency-settings.json. Not a test.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { createDatabase } from '../src/db/database.js';
import { createKafka } from '../src/kafka/kafka-client.js';
import { decodeOutboxRecord } from '../src/kafka/outbox-record.js';
import { createRecordProducer, type RecordToSend } from '../src/kafka/producer.js';
import { ensureTopics } from '../src/kafka/topics.js';
import { connectUrl, databaseUrl, kafkaBrokers, loadStackConfig } from '../src/stack/config.js';
import { connectPid, OUTBOX_CONNECTOR, waitForConnectorRunning } from '../src/stack/connect.js';
import { kafkaPid } from '../src/stack/kafka.js';
import { postgresPid } from '../src/stack/postgres.js';
import { processCpuMs, treeCpuMs } from './proc.js';
import { oneRowAtATime, writeConcurrently } from './outbox-load.js';
import { distribution, format } from './stats.js';

const settings = z
  .object({
    BENCH_LATENCY_ROWS: z.coerce.number().int().min(10).default(200),
    BENCH_IDLE_SECONDS: z.coerce.number().min(1).default(60),
    BENCH_BURST_ROWS: z.coerce.number().int().min(100).default(10_000),
    BENCH_LINGER_SECONDS: z.coerce.number().min(1).default(10),
    BENCH_LATENCY_GROUPS: z.string().default('poll,batch,consumer,linger'),
    // Repeat values to interleave them on a noisy machine, e.g. 1,10,5,20,1,10,5,20.
    BENCH_POLL_VALUES: z
      .string()
      .regex(/^\d+(,\d+)*$/)
      .default('1,5,10,50'),
  })
  .parse(process.env);
const groups = new Set(settings.BENCH_LATENCY_GROUPS.split(',').map((g) => g.trim()));

const config = loadStackConfig();
const db = createDatabase({ connectionString: databaseUrl(config), poolSize: 5, applicationName: 'sous-bench' });
const kafka = createKafka({ brokers: kafkaBrokers(config), clientId: 'sous-bench-latency' });
const run = Date.now().toString(36);
const filler = 'x'.repeat(256);
const connectorFile = join(config.root, 'connectors', 'outbox-connector.json');
const baseConnector = JSON.parse(readFileSync(connectorFile, 'utf8')) as Record<string, string>;

// ---------------------------------------------------------------- pieces

/** Reconfigures the outbox connector (its task restarts) and waits until it runs again. */
async function configureConnector(overrides: Record<string, string>): Promise<void> {
  const response = await fetch(`${connectUrl(config)}/connectors/${OUTBOX_CONNECTOR}/config`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...baseConnector, ...overrides }),
  });
  if (!response.ok) throw new Error(`connector config rejected: ${response.status} ${await response.text()}`);
  await sleep(3000); // the old task stops and the new one starts streaming
  await waitForConnectorRunning(config);
}

interface ConsumerSettings {
  readonly maxWaitTimeInMs: number;
  readonly minBytes: number;
}

/**
 * A consumer of outbox records with the settings under test, noting when each row id
 * arrived (performance.now()). Built on the project's Kafka client; the settings are the
 * ones src/kafka does not expose (yet).
 */
async function consume(topic: string, s: ConsumerSettings) {
  const received = new Map<string, number>();
  const consumer = kafka.consumer({
    groupId: `sous-bench-latency-${topic}-${s.maxWaitTimeInMs}-${s.minBytes}`,
    readUncommitted: false,
    maxWaitTimeInMs: s.maxWaitTimeInMs,
    minBytes: s.minBytes,
  });
  let joined: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (joined = resolve));
  consumer.on(consumer.events.GROUP_JOIN, () => joined());
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: 6,
    eachMessage: async ({ topic: t, partition, message }) => {
      const at = performance.now();
      const record = decodeOutboxRecord(t, partition, message);
      if (!received.has(record.id)) received.set(record.id, at);
    },
  });
  await ready;
  return { received, stop: () => consumer.disconnect() };
}

async function newTopic(name: string): Promise<string> {
  const topic = `sous.bench.${name}.${run}`;
  await ensureTopics(kafka, [topic], { partitions: 6 });
  return topic;
}

/** Commit → consumed, one row at a time: `rows` measured after 20 warm-up rows. */
async function oneAtATime(topic: string, received: Map<string, number>, rows: number) {
  const d = distribution(await oneRowAtATime(db, { topic, received, rows, filler }));
  return { p50: d.p50, p99: d.p99 };
}

/** CPU (ms per second of wall time) of each process over an idle window. */
async function idleCpu(seconds: number) {
  const pids = { kafka: kafkaPid(config), connect: connectPid(config), postgres: postgresPid(config) };
  const read = () => {
    const self = process.cpuUsage();
    return {
      kafka: processCpuMs(pids.kafka),
      connect: processCpuMs(pids.connect),
      postgres: treeCpuMs(pids.postgres),
      consumer: (self.user + self.system) / 1000,
    };
  };
  await sleep(2000); // let the last work settle
  const before = read();
  await sleep(seconds * 1000);
  const after = read();
  const per = (k: keyof typeof before) => (after[k] - before[k]) / seconds;
  return {
    idleKafkaMsPerS: per('kafka'),
    idleConnectMsPerS: per('connect'),
    idlePostgresMsPerS: per('postgres'),
    idleConsumerMsPerS: per('consumer'),
  };
}

/** A burst of rows written by 4 writers × 50 rows per transaction: rows/s end to end and row latency. */
async function burst(topic: string, received: Map<string, number>, rows: number) {
  const perTx = 50;
  const committedAt = new Map<string, number>();
  const started = performance.now();
  await writeConcurrently(db, {
    topic,
    eventType: 'burst',
    transactions: Math.ceil(rows / perTx),
    rowsPerTransaction: perTx,
    writers: 4,
    filler,
    committed: (ids, at) => {
      for (const id of ids) committedAt.set(id, at);
    },
  });
  const deadline = performance.now() + 300_000;
  while ([...committedAt.keys()].some((id) => !received.has(id))) {
    if (performance.now() > deadline) throw new Error('burst did not arrive within 300 s');
    await sleep(20);
  }
  const done = Math.max(...[...committedAt.keys()].map((id) => received.get(id) ?? 0));
  const d = distribution([...committedAt].map(([id, at]) => (received.get(id) ?? at) - at));
  return { burstRowsPerS: committedAt.size / ((done - started) / 1000), burstP50: d.p50, burstP99: d.p99 };
}

type Row = Record<string, string | number>;
const results: Record<string, Row[]> = {};

function print(group: string, rows: readonly Row[]) {
  console.log(`\n${group}`);
  const keys = Object.keys(rows[0] ?? {});
  const cells = rows.map((r) => keys.map((k) => (typeof r[k] === 'number' ? format(r[k]) : String(r[k]))));
  const widths = keys.map((k, i) => Math.max(k.length, ...cells.map((c) => (c[i] ?? '').length)));
  console.log(`  ${keys.map((k, i) => k.padStart(widths[i] ?? 0)).join('  ')}`);
  for (const c of cells) console.log(`  ${c.map((v, i) => v.padStart(widths[i] ?? 0)).join('  ')}`);
}

const defaultConsumer: ConsumerSettings = { maxWaitTimeInMs: 100, minBytes: 1 };

// ---------------------------------------------------------------- groups

async function pollGroup() {
  const rows: Row[] = [];
  for (const poll of settings.BENCH_POLL_VALUES.split(',')) {
    await configureConnector({ 'poll.interval.ms': poll });
    const topic = await newTopic(`poll${poll}-${rows.length}`);
    const c = await consume(topic, defaultConsumer);
    const latency = await oneAtATime(topic, c.received, settings.BENCH_LATENCY_ROWS);
    await c.stop(); // idle cost of the connector alone
    const idle = await idleCpu(settings.BENCH_IDLE_SECONDS);
    rows.push({ 'poll.interval.ms': poll, p50: latency.p50, p99: latency.p99, ...idle });
    print('Debezium poll.interval.ms (so far)', rows);
  }
  return rows;
}

async function batchGroup() {
  const rows: Row[] = [];
  for (const size of ['256', '2048', '8192']) {
    await configureConnector({ 'max.batch.size': size, 'max.queue.size': String(Math.max(8192, Number(size) * 4)) });
    const topic = await newTopic(`batch${size}`);
    const c = await consume(topic, defaultConsumer);
    const latency = await oneAtATime(topic, c.received, Math.min(100, settings.BENCH_LATENCY_ROWS));
    const b = await burst(topic, c.received, settings.BENCH_BURST_ROWS);
    await c.stop();
    rows.push({ 'max.batch.size': size, p50: latency.p50, p99: latency.p99, ...b });
    print('Debezium max.batch.size (so far)', rows);
  }
  return rows;
}

async function consumerGroup() {
  const rows: Row[] = [];
  const options: ConsumerSettings[] = [
    { maxWaitTimeInMs: 10, minBytes: 1 },
    { maxWaitTimeInMs: 50, minBytes: 1 },
    { maxWaitTimeInMs: 100, minBytes: 1 },
    { maxWaitTimeInMs: 500, minBytes: 1 },
    { maxWaitTimeInMs: 100, minBytes: 1024 },
  ];
  for (const o of options) {
    const topic = await newTopic(`consumer${o.maxWaitTimeInMs}x${o.minBytes}`);
    const c = await consume(topic, o);
    const latency = await oneAtATime(topic, c.received, settings.BENCH_LATENCY_ROWS);
    const idle = await idleCpu(settings.BENCH_IDLE_SECONDS); // the consumer keeps fetching
    await c.stop();
    rows.push({
      maxWaitTimeInMs: o.maxWaitTimeInMs,
      minBytes: o.minBytes,
      p50: latency.p50,
      p99: latency.p99,
      ...idle,
    });
    print('consumer maxWaitTimeInMs / minBytes (so far)', rows);
  }
  return rows;
}

/**
 * Replies sent by 100 concurrent senders for a while, through one idempotent producer: each
 * reply waits in a queue; with linger 0 the queue goes out as soon as no send is in flight,
 * with linger L it goes out L ms after its first reply (and not before the send in flight ends).
 */
async function lingerGroup() {
  const rows: Row[] = [];
  for (const linger of [0, 1, 5]) {
    const topic = await newTopic(`linger${linger}`);
    const producer = createRecordProducer(kafka);
    let queue: { record: RecordToSend; done: () => void; fail: (e: unknown) => void }[] = [];
    let inFlight = false;
    let timer: NodeJS.Timeout | undefined;
    let sends = 0;
    const flush = () => {
      timer = undefined;
      if (inFlight || queue.length === 0) return;
      const batch = queue;
      queue = [];
      inFlight = true;
      sends++;
      producer.send(batch.map((b) => b.record)).then(
        () => {
          inFlight = false;
          for (const b of batch) b.done();
          if (queue.length > 0) schedule();
        },
        (error: unknown) => {
          inFlight = false;
          for (const b of batch) b.fail(error);
        },
      );
    };
    const schedule = () => {
      if (linger === 0) flush();
      else timer ??= setTimeout(flush, linger);
    };
    const send = (record: RecordToSend) =>
      new Promise<void>((done, fail) => {
        queue.push({ record, done, fail });
        schedule();
      });
    await send({ topic, key: 'warm', value: 'up' });
    const lonely: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      await send({ topic, key: `k${i}`, value: filler });
      lonely.push(performance.now() - t);
    }
    const latencies: number[] = [];
    const until = performance.now() + settings.BENCH_LINGER_SECONDS * 1000;
    sends = 0;
    const began = performance.now();
    const cpu0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: 100 }, async (_, s) => {
        for (let i = 0; performance.now() < until; i++) {
          const t = performance.now();
          await send({ topic, key: `s${s}`, value: filler });
          latencies.push(performance.now() - t);
        }
      }),
    );
    const seconds = (performance.now() - began) / 1000;
    const cpu = process.cpuUsage(cpu0);
    if (timer !== undefined) clearTimeout(timer);
    await producer.disconnect();
    const one = distribution(lonely);
    const loaded = distribution(latencies);
    rows.push({
      lingerMs: linger,
      aloneSendP50: one.p50,
      loadedRepliesPerS: latencies.length / seconds,
      loadedSendP50: loaded.p50,
      loadedSendP99: loaded.p99,
      repliesPerSend: latencies.length / Math.max(1, sends),
      producerCpuUsPerReply: (cpu.user + cpu.system) / latencies.length,
    });
    print('producer linger (so far)', rows);
  }
  return rows;
}

// ---------------------------------------------------------------- main

console.log('latency settings', settings, 'connector', {
  'poll.interval.ms': baseConnector['poll.interval.ms'],
  'max.batch.size': baseConnector['max.batch.size'],
  exactlyOnce: config.connectExactlyOnce,
});
try {
  if (groups.has('poll')) results.poll = await pollGroup();
  if (groups.has('batch')) results.batch = await batchGroup();
  if (groups.has('consumer')) {
    await configureConnector({});
    results.consumer = await consumerGroup();
  }
  if (groups.has('linger')) results.linger = await lingerGroup();
} finally {
  if (groups.has('poll') || groups.has('batch')) await configureConnector({}); // the file's settings again
  await db.destroy();
}
for (const [group, rows] of Object.entries(results)) print(group, rows);
const out = join(config.root, '.cache', 'bench');
mkdirSync(out, { recursive: true });
writeFileSync(
  join(out, 'latency-settings.json'),
  `${JSON.stringify({ at: new Date().toISOString(), settings, results }, null, 2)}\n`,
);
console.log(`\nwritten to ${join(out, 'latency-settings.json')}`);
process.exit(0);
