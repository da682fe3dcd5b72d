// npm run bench:outbox — latency and throughput of the outbox path on the running stack:
// commit in PostgreSQL → Debezium (Kafka Connect) → Kafka → kafkajs consumer.
// Prints figures and writes them to .cache/bench/outbox-path.json. Not a test.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDatabase } from '../src/db/database.js';
import { createKafka } from '../src/kafka/kafka-client.js';
import { runOutboxConsumer } from '../src/kafka/outbox-consumer.js';
import { ensureTopics } from '../src/kafka/topics.js';
import { connectUrl, databaseUrl, kafkaBrokers, loadStackConfig } from '../src/stack/config.js';
import { OUTBOX_CONNECTOR } from '../src/stack/connect.js';
import { oneRowAtATime, writeConcurrently } from './outbox-load.js';

const LOW_LOAD_ROWS = Number(process.env.BENCH_LOW_LOAD_ROWS ?? 500);
const SATURATION_ROWS = Number(process.env.BENCH_SATURATION_ROWS ?? 50_000);
const ROWS_PER_TX = Number(process.env.BENCH_ROWS_PER_TX ?? 50);
const WRITERS = Number(process.env.BENCH_WRITERS ?? 4);
const PAYLOAD_BYTES = 256;

const config = loadStackConfig();
const db = createDatabase({
  connectionString: databaseUrl(config),
  poolSize: WRITERS + 1,
  applicationName: 'sous-bench',
});
const kafka = createKafka({ brokers: kafkaBrokers(config), clientId: 'sous-bench' });
const run = Date.now().toString(36);
const filler = 'x'.repeat(PAYLOAD_BYTES);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

/** Starts a consumer and returns a map of row id → time received (performance.now()). */
async function consume(topic: string) {
  const received = new Map<string, number>();
  const consumer = await runOutboxConsumer({
    kafka,
    groupId: `sous-bench-${topic}`,
    topics: [topic],
    fromBeginning: true,
    partitionsConsumedConcurrently: 6,
    handle: async (record) => {
      if (!received.has(record.id)) received.set(record.id, performance.now());
    },
    onMalformed: async (error) => {
      throw error;
    },
  });
  await consumer.ready;
  return { received, consumer };
}

async function waitFor(received: Map<string, number>, count: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (received.size < count) {
    if (Date.now() > deadline) throw new Error(`only ${received.size} of ${count} rows arrived within ${timeoutMs} ms`);
    await sleep(2);
  }
}

async function lowLoad() {
  const topic = `sous.bench.latency.${run}`;
  await ensureTopics(kafka, [topic]);
  const { received, consumer } = await consume(topic);
  const latencies = await oneRowAtATime(db, { topic, received, rows: LOW_LOAD_ROWS, filler });
  await consumer.stop();
  latencies.sort((a, b) => a - b);
  return {
    rows: latencies.length,
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    max: latencies.at(-1) ?? Number.NaN,
  };
}

async function connector(action: 'pause' | 'resume') {
  const response = await fetch(`${connectUrl(config)}/connectors/${OUTBOX_CONNECTOR}/${action}`, { method: 'PUT' });
  if (!response.ok) throw new Error(`${action} failed: ${response.status}`);
}

function writeRows(topic: string, label: string): Promise<number> {
  return writeConcurrently(db, {
    topic,
    eventType: label,
    transactions: Math.ceil(SATURATION_ROWS / ROWS_PER_TX),
    rowsPerTransaction: ROWS_PER_TX,
    writers: WRITERS,
    filler,
  });
}

/** Rows written while the connector is paused, then drained: Debezium's own rate. */
async function drain() {
  const topic = `sous.bench.drain.${run}`;
  await ensureTopics(kafka, [topic]);
  const { received, consumer } = await consume(topic);
  await connector('pause');
  let rows: number;
  try {
    await sleep(2000); // Let the task stop before the backlog is written.
    rows = await writeRows(topic, 'drain');
  } finally {
    await connector('resume');
  }
  const resumed = performance.now();
  await waitFor(received, rows, 600_000);
  const seconds = (performance.now() - resumed) / 1000;
  await consumer.stop();
  return { rows, seconds, rowsPerSecond: rows / seconds };
}

async function saturation() {
  const topic = `sous.bench.throughput.${run}`;
  await ensureTopics(kafka, [topic]);
  const { received, consumer } = await consume(topic);
  const started = performance.now();
  const rows = await writeRows(topic, 'load');
  const written = performance.now();
  await waitFor(received, rows, 600_000);
  const done = performance.now();
  await consumer.stop();
  return {
    rows,
    writeSeconds: (written - started) / 1000,
    writeRowsPerSecond: rows / ((written - started) / 1000),
    endToEndSeconds: (done - started) / 1000,
    endToEndRowsPerSecond: rows / ((done - started) / 1000),
  };
}

try {
  const connector = JSON.parse(
    readFileSync(join(config.root, 'connectors', 'outbox-connector.json'), 'utf8'),
  ) as Record<string, string>;
  const settings = {
    exactlyOnceSource: config.connectExactlyOnce,
    pollIntervalMs: connector['poll.interval.ms'],
    maxBatchSize: connector['max.batch.size'],
    producerLingerMs: connector['producer.override.linger.ms'],
    offsetFlushIntervalMs: 1000,
    consumerMaxWaitMs: 100,
    payloadBytes: PAYLOAD_BYTES,
    rowsPerTransaction: ROWS_PER_TX,
    writers: WRITERS,
  };
  console.log('settings', settings);
  const latency = await lowLoad();
  console.log(
    `low load (one row at a time, ${latency.rows} rows): commit → consumed p50 ${latency.p50.toFixed(1)} ms, p90 ${latency.p90.toFixed(1)} ms, p99 ${latency.p99.toFixed(1)} ms, max ${latency.max.toFixed(1)} ms`,
  );
  const throughput = await saturation();
  console.log(
    `saturation (${throughput.rows} rows, ${WRITERS} writers × ${ROWS_PER_TX} rows/tx): written at ${Math.round(throughput.writeRowsPerSecond)} rows/s; consumed end to end at ${Math.round(throughput.endToEndRowsPerSecond)} rows/s (${throughput.endToEndSeconds.toFixed(1)} s)`,
  );
  const drained = await drain();
  console.log(
    `backlog drain (${drained.rows} rows written with the connector paused, then resumed): ${Math.round(drained.rowsPerSecond)} rows/s (${drained.seconds.toFixed(1)} s, includes task restart)`,
  );
  const out = join(config.root, '.cache', 'bench');
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'outbox-path.json'),
    `${JSON.stringify({ at: new Date().toISOString(), settings, latency, throughput, drain: drained }, null, 2)}\n`,
  );
  console.log(`written to ${join(out, 'outbox-path.json')}`);
} finally {
  await db.destroy();
}
