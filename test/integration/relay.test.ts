// The relay between two real regions (two Kafka clusters): exactly once and in order per
// key, through a relay SIGKILLed mid-stream and the remote (source) broker stopped and
// restarted. The source is the second region's cluster, the destination the test stack's.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Consumer } from 'kafkajs';
import { createKafka } from '../../src/kafka/kafka-client.js';
import { createRecordProducer, type RecordToSend } from '../../src/kafka/producer.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import { routingHeaders, relayTopicFor, RELAY_DEAD_LETTER_TOPIC, RELAY_HEADERS } from '../../src/relay/routing.js';
import { startKafka, stopKafka, resolveArtifacts } from '../../src/stack/stack.js';
import {
  homeBrokers,
  remoteBrokers,
  remoteStack,
  spawnRelay,
  stopRemoteRegion,
  useRemoteRegion,
} from '../helpers/regions.js';
import { testKafka, uniqueName } from '../helpers/stack.js';

const KEYS = 20;

interface Arrival {
  readonly key: string;
  readonly seq: number;
  readonly from: string | undefined;
}

/** Reads `topic` of the destination (read_committed) from its beginning into `arrivals`. */
async function follow(topic: string, arrivals: Arrival[]): Promise<Consumer> {
  const consumer = testKafka().consumer({ groupId: uniqueName('relay-check'), readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const body = JSON.parse(message.value?.toString('utf8') ?? '{}') as { key: string; seq: number };
      arrivals.push({ key: body.key, seq: body.seq, from: message.headers?.[RELAY_HEADERS.relayedFrom]?.toString() });
    },
  });
  return consumer;
}

/** Messages `from` to `to` (exclusive), round-robin over the keys, each with its per-key sequence. */
function messages(relayTopic: string, region: string, target: string, from: number, to: number): RecordToSend[] {
  const out: RecordToSend[] = [];
  for (let i = from; i < to; i++) {
    const key = `key-${i % KEYS}`;
    out.push({
      topic: relayTopic,
      key,
      value: JSON.stringify({ key, seq: Math.floor(i / KEYS) }),
      headers: routingHeaders(region, target),
    });
  }
  return out;
}

async function until(what: string, check: () => boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Every key's sequence is exactly 0..n-1, in order: nothing lost, nothing twice. */
function assertExactlyOnceInOrder(arrivals: readonly Arrival[], total: number): void {
  assert.equal(arrivals.length, total, `${arrivals.length} arrived, ${total} sent`);
  const perKey = new Map<string, number[]>();
  for (const a of arrivals) perKey.set(a.key, [...(perKey.get(a.key) ?? []), a.seq]);
  assert.equal(perKey.size, KEYS);
  for (const [key, seqs] of perKey) {
    assert.deepEqual(seqs, [...Array(total / KEYS).keys()], `key ${key} out of order or incomplete`);
  }
}

/** A case's own regions, relay topic (in the source cluster) and target topic (in the destination), created. */
async function relayCase() {
  const home = uniqueName('home');
  const remote = uniqueName('remote');
  const target = uniqueName('test.relayed');
  const relayTopic = relayTopicFor(home);
  const source = createKafka({ brokers: remoteBrokers, clientId: uniqueName('relay-test') });
  await ensureTopics(source, [relayTopic]);
  await ensureTopics(testKafka(), [target]);
  return { home, remote, target, relayTopic, source };
}

// At file level: an `after` registered inside the `before` hook would run right after it.
after(stopRemoteRegion);

describe('relay between two regions', () => {
  before(async () => {
    await useRemoteRegion();
  });

  it('carries 1,000 messages over 20 keys, complete and in order per key, stamped with their source region', async () => {
    const { home, remote, target, relayTopic, source } = await relayCase();
    const producer = createRecordProducer(source);
    const arrivals: Arrival[] = [];
    const consumer = await follow(target, arrivals);
    try {
      await producer.send(messages(relayTopic, home, target, 0, 1000));
      const started = Date.now();
      const relay = spawnRelay(home, homeBrokers, [{ region: remote, brokers: remoteBrokers }]);
      await relay.ready;
      await until('1,000 arrivals', () => arrivals.length >= 1000);
      const seconds = (Date.now() - started) / 1000;
      process.stderr.write(`[relay] 1000 messages relayed in ${seconds.toFixed(2)} s including relay start\n`);
      await sleep(1000);
      assertExactlyOnceInOrder(arrivals, 1000);
      assert.ok(arrivals.every((a) => a.from === remote));
      await relay.kill();
    } finally {
      await consumer.disconnect();
      await producer.disconnect();
    }
  });

  it('dead-letters a record whose target topic does not exist, with a coded reason, and copies the records behind it', async () => {
    const { home, remote, target, relayTopic, source } = await relayCase();
    const missing = uniqueName('test.missing');
    const producer = createRecordProducer(source);
    const arrivals: Arrival[] = [];
    const consumer = await follow(target, arrivals);
    const letters: { key: string; error: string | undefined }[] = [];
    const dead = testKafka().consumer({ groupId: uniqueName('relay-dead'), readUncommitted: false });
    try {
      // One key, so one partition: the record to the missing topic is in front of the others.
      const key = uniqueName('key');
      const one = (seq: number, to: string): RecordToSend => ({
        topic: relayTopic,
        key,
        value: JSON.stringify({ key, seq }),
        headers: routingHeaders(home, to),
      });
      await producer.send([one(0, target), one(1, missing), one(2, target)]);
      const relay = spawnRelay(home, homeBrokers, [{ region: remote, brokers: remoteBrokers }]);
      await relay.ready;
      await until('the records behind the bad one', () => arrivals.length >= 2, 60_000);
      assert.deepEqual(
        arrivals.map((a) => a.seq),
        [0, 2],
      );
      await dead.connect();
      await dead.subscribe({ topics: [RELAY_DEAD_LETTER_TOPIC], fromBeginning: true });
      await dead.run({
        eachMessage: async ({ message }) => {
          if (message.key?.toString() !== key) return;
          letters.push({ key, error: message.headers?.[RELAY_HEADERS.error]?.toString() });
          await Promise.resolve();
        },
      });
      await until('the dead letter', () => letters.length >= 1, 60_000);
      assert.equal(letters.length, 1);
      assert.match(letters[0]?.error ?? '', new RegExp(`^unknown_target_topic \\(.* to ${missing}\\)$`));
      await relay.kill();
    } finally {
      await dead.disconnect();
      await consumer.disconnect();
      await producer.disconnect();
    }
  });

  it('loses and doubles nothing and keeps order per key when the relay is SIGKILLed and the remote broker restarts', async () => {
    const { home, remote, target, relayTopic, source } = await relayCase();
    let producer = createRecordProducer(source);
    const arrivals: Arrival[] = [];
    const consumer = await follow(target, arrivals);
    // Small fetches: many small transactions, so the crashes land mid-stream.
    const env = { SOUS_RELAY_FETCH_MAX_BYTES: '1024' };
    const sources = [{ region: remote, brokers: remoteBrokers }];
    try {
      await producer.send(messages(relayTopic, home, target, 0, 400));
      let relay = spawnRelay(home, homeBrokers, sources, env);
      await relay.ready;
      await until('150 arrivals', () => arrivals.length >= 150);
      await relay.kill('SIGKILL');
      const atKill = arrivals.length;
      await producer.send(messages(relayTopic, home, target, 400, 700));
      relay = spawnRelay(home, homeBrokers, sources, env);
      await relay.ready;
      await until('500 arrivals', () => arrivals.length >= 500);
      // The remote cluster goes away mid-stream and comes back.
      await producer.disconnect();
      await stopKafka(remoteStack);
      const atStop = arrivals.length;
      await sleep(3000);
      await startKafka(
        remoteStack,
        resolveArtifacts(remoteStack, () => undefined),
        () => undefined,
      );
      producer = createRecordProducer(source);
      await producer.send(messages(relayTopic, home, target, 700, 1000));
      await until('1,000 arrivals', () => arrivals.length >= 1000, 180_000);
      await sleep(2000);
      process.stderr.write(`[relay] killed at ${atKill} arrivals, remote broker stopped at ${atStop}\n`);
      assert.ok(atKill < 1000 && atStop < 1000);
      assertExactlyOnceInOrder(arrivals, 1000);
      await relay.kill();
    } finally {
      await consumer.disconnect();
      await producer.disconnect();
    }
  });
});
