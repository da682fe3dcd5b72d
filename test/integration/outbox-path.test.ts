// The outbox path on the real stack: PostgreSQL → Debezium (Kafka Connect) → Kafka → consumer.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { ensureTopics } from '../../src/kafka/topics.js';
import { writeOutbox } from '../../src/outbox/write-outbox.js';
import type { OutboxMessage } from '../../src/outbox/outbox-message.js';
import { collectUntil, testDatabase, testKafka, uniqueName } from '../helpers/stack.js';

const db = testDatabase();
const kafka = testKafka();
after(async () => db.destroy());

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('outbox path', () => {
  it('delivers a committed row to its topic with key, headers and payload intact', async () => {
    const topic = uniqueName('test.outbox.committed');
    await ensureTopics(kafka, [topic]);
    const payload = {
      order: 'A-1',
      amount: 12.5,
      lines: [{ sku: 'x', qty: 2 }],
      note: 'ünïcødé ✓',
      nested: { nil: null },
    };
    const [id] = await db.transaction().execute((trx) =>
      writeOutbox(trx, [
        {
          topic,
          key: 'execution-42',
          aggregateType: 'execution',
          eventType: 'step.command',
          payload,
          traceparent: TRACEPARENT,
          correlationId: 'corr-1',
          idempotencyKey: 'exec-42/step-1/attempt-1',
          headers: { 'sous-step': 'charge', tenant: 'acme' },
        },
      ]),
    );
    const { records, malformed } = await collectUntil(kafka, [topic], (c) => c.records.length >= 1);
    assert.equal(malformed.length, 0);
    const [record] = records;
    assert.ok(record);
    assert.equal(record.id, id);
    assert.equal(record.topic, topic);
    assert.equal(record.key, 'execution-42');
    assert.equal(record.aggregateType, 'execution');
    assert.equal(record.eventType, 'step.command');
    assert.equal(record.traceparent, TRACEPARENT);
    assert.equal(record.correlationId, 'corr-1');
    assert.equal(record.idempotencyKey, 'exec-42/step-1/attempt-1');
    assert.deepEqual(record.headers, { 'sous-step': 'charge', tenant: 'acme' });
    assert.deepEqual(record.payload, payload);

    const left = await sql<{ n: string }>`SELECT count(*) AS n FROM sous.outbox WHERE id = ${id}::uuid`.execute(db);
    assert.equal(left.rows[0]?.n, '0', 'the row was deleted in its own transaction: the table stays empty');
  });

  it('never delivers a rolled-back row', async () => {
    const topic = uniqueName('test.outbox.rollback');
    await ensureTopics(kafka, [topic]);
    const message = (eventType: string): OutboxMessage => ({
      topic,
      key: 'same-key',
      aggregateType: 'test',
      eventType,
      payload: { eventType },
    });
    let rolledBackId: string | undefined;
    await assert.rejects(
      db.transaction().execute(async (trx) => {
        [rolledBackId] = await writeOutbox(trx, [message('rolled-back')]);
        throw new Error('abort the transaction');
      }),
      /abort the transaction/,
    );
    assert.ok(rolledBackId);
    // Same key, so same partition: had the rolled-back row been sent, it would come first.
    const [committedId] = await db.transaction().execute((trx) => writeOutbox(trx, [message('committed')]));
    const { records } = await collectUntil(kafka, [topic], (c) => c.records.some((r) => r.id === committedId));
    await sleep(500); // A late rolled-back record would have had time to show up.
    assert.deepEqual(
      records.map((r) => r.eventType),
      ['committed'],
    );
    assert.ok(!records.some((r) => r.id === rolledBackId));
  });

  it('delivers 5,000 rows over 50 keys complete and in order per key', async () => {
    const topic = uniqueName('test.outbox.order');
    await ensureTopics(kafka, [topic]);
    const keys = Array.from({ length: 50 }, (_, k) => `key-${k}`);
    const written = new Set<string>();
    // 100 transactions, each one row per key: per-key sequence numbers increase with commit order.
    for (let round = 0; round < 100; round++) {
      const ids = await db.transaction().execute((trx) =>
        writeOutbox(
          trx,
          keys.map((key) => ({ topic, key, aggregateType: 'test', eventType: 'seq', payload: { key, seq: round } })),
        ),
      );
      for (const id of ids) written.add(id);
    }
    assert.equal(written.size, 5000);
    const seen = new Set<string>();
    const { records } = await collectUntil(
      kafka,
      [topic],
      (c) => {
        for (const r of c.records) seen.add(r.id);
        return seen.size >= 5000;
      },
      { timeoutMs: 120_000 },
    );
    assert.deepEqual(new Set(records.map((r) => r.id)), written, 'every written row arrived, and nothing else');
    const lastSeq = new Map<string, number>();
    const firstSeen = new Set<string>();
    for (const r of records) {
      if (firstSeen.has(r.id)) continue; // A redelivered duplicate carries the same id.
      firstSeen.add(r.id);
      const { key, seq } = r.payload as { key: string; seq: number };
      assert.equal(r.key, key);
      const previous = lastSeq.get(key) ?? -1;
      assert.ok(seq > previous, `key ${key}: seq ${seq} arrived after ${previous}`);
      lastSeq.set(key, seq);
    }
    assert.equal(lastSeq.size, 50);
    assert.ok([...lastSeq.values()].every((seq) => seq === 99));
  });

  it('delivers a row naming a topic that does not exist yet, creating it with the connector defaults', async () => {
    const topic = uniqueName('test.outbox.newtopic');
    const admin = kafka.admin();
    await admin.connect();
    try {
      assert.ok(!(await admin.listTopics()).includes(topic));
      const [id] = await db
        .transaction()
        .execute((trx) =>
          writeOutbox(trx, [{ topic, key: 'k', aggregateType: 'test', eventType: 'created', payload: { ok: true } }]),
        );
      const deadline = Date.now() + 30_000;
      while (!(await admin.listTopics()).includes(topic)) {
        assert.ok(Date.now() < deadline, `Kafka Connect did not create ${topic}`);
        await sleep(100);
      }
      const { records } = await collectUntil(kafka, [topic], (c) => c.records.length >= 1);
      assert.equal(records[0]?.id, id);
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      assert.equal(metadata.topics[0]?.partitions.length, 6, 'topic.creation.default.partitions of the connector');
    } finally {
      await admin.disconnect();
    }
  });
});
