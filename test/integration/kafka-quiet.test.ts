// A healthy start logs no error: creating topics and then producing to and consuming from
// them at once (what npm start, a control plane and every worker do on a fresh stack)
// must not make kafkajs log an error. It did: ensureTopics polled the new topics' metadata
// by name, which the broker answers with an error (logged at error level by kafkajs on
// every retry) until the topic reaches its metadata cache.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKafka } from '../../src/kafka/kafka-client.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import { createLogger } from '../../src/logger.js';
import { kafkaBrokers } from '../../src/stack/config.js';
import { stackConfig, uniqueName } from '../helpers/stack.js';

const lines: { level: number; msg: string; error?: string }[] = [];
const sink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
      lines.push(JSON.parse(line) as { level: number; msg: string; error?: string });
    }
    done();
  },
});
const logger = createLogger({ format: 'json', level: 'info', destination: sink });
const kafka = createKafka({ brokers: kafkaBrokers(stackConfig), clientId: uniqueName('quiet'), logger });
const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const step of cleanup.reverse()) await step();
});

describe('kafka on a healthy stack', () => {
  it('new topics, then a producer and a consumer on them: no error-level log line', async () => {
    const topics = Array.from({ length: 4 }, (_, i) => uniqueName(`test.quiet${i}`));
    await ensureTopics(kafka, topics);
    await ensureTopics(
      kafka,
      topics.map((t) => `${t}.DLT`),
      { partitions: 1 },
    );
    const producer = kafka.producer();
    await producer.connect();
    cleanup.push(() => producer.disconnect());
    const consumer = kafka.consumer({ groupId: uniqueName('test-quiet') });
    await consumer.connect();
    cleanup.push(() => consumer.disconnect());
    await consumer.subscribe({ topics, fromBeginning: true });
    const received: string[] = [];
    await consumer.run({
      eachMessage: async ({ topic }) => {
        received.push(topic);
      },
    });
    await producer.send({ topic: topics[0] ?? '', messages: [{ key: 'k', value: 'v' }] });
    const deadline = Date.now() + 60_000;
    while (received.length === 0) {
      assert.ok(Date.now() < deadline, 'the message never arrived');
      await sleep(50);
    }
    const errors = lines.filter((l) => l.level >= 50);
    assert.deepEqual(
      errors.map((l) => `${l.msg}: ${l.error ?? ''}`),
      [],
    );
    assert.ok(lines.length > 0 || errors.length === 0);
  });
});
