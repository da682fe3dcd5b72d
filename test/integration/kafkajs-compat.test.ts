// kafkajs 2.2.4 against the Kafka 4.1 broker of the stack: Kafka 4 removed old protocol
// versions, so produce, group consumption and transactions are proven before use.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Consumer, EachMessagePayload } from 'kafkajs';
import { ensureTopics } from '../../src/kafka/topics.js';
import { testKafka, uniqueName } from '../helpers/stack.js';

const kafka = testKafka();

async function consumeValues(topic: string, count: number, readUncommitted = false): Promise<string[]> {
  const values: string[] = [];
  const consumer: Consumer = kafka.consumer({
    groupId: uniqueName('compat-group'),
    readUncommitted,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }: EachMessagePayload) => void values.push(message.value?.toString() ?? ''),
  });
  const deadline = Date.now() + 30_000;
  while (values.length < count && Date.now() < deadline) await sleep(50);
  await consumer.disconnect();
  return values;
}

describe('kafkajs against the Kafka 4.1 broker', () => {
  const producer = kafka.producer({ idempotent: true });
  before(async () => producer.connect());
  after(async () => producer.disconnect());

  it('produces and consumes with a consumer group, committing offsets', async () => {
    const topic = uniqueName('compat.plain');
    await ensureTopics(kafka, [topic], { partitions: 3 });
    await producer.send({ topic, messages: [1, 2, 3].map((n) => ({ key: 'k', value: `v${n}` })) });
    const groupId = uniqueName('compat-group');
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
    const seen: string[] = [];
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => void seen.push(message.value?.toString() ?? '') });
    const deadline = Date.now() + 30_000;
    while (seen.length < 3 && Date.now() < deadline) await sleep(50);
    await consumer.disconnect();
    assert.deepEqual(seen, ['v1', 'v2', 'v3']);

    const admin = kafka.admin();
    await admin.connect();
    const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
    await admin.disconnect();
    const committed = offsets[0]?.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
    assert.equal(committed, 3, 'the group committed its position after the three records');
  });

  it('commits and aborts transactions; read_committed consumers see only committed records', async () => {
    const topic = uniqueName('compat.tx');
    await ensureTopics(kafka, [topic], { partitions: 1 });
    const txProducer = kafka.producer({
      transactionalId: uniqueName('compat-tx'),
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await txProducer.connect();
    try {
      const aborted = await txProducer.transaction();
      await aborted.send({ topic, messages: [{ key: 'k', value: 'aborted' }] });
      await aborted.abort();
      const committed = await txProducer.transaction();
      await committed.send({ topic, messages: [{ key: 'k', value: 'committed' }] });
      await committed.commit();
    } finally {
      await txProducer.disconnect();
    }
    assert.deepEqual(await consumeValues(topic, 1), ['committed']);
    assert.deepEqual(await consumeValues(topic, 2, true), ['aborted', 'committed']);
  });
});
