// Kafka Connect SIGKILLed while rows are being written, then restarted: every row
// arrives, and anything delivered twice is the same row (same id, key and payload).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureTopics } from '../../src/kafka/topics.js';
import { writeOutbox } from '../../src/outbox/write-outbox.js';
import { resolveArtifacts } from '../../src/stack/artifacts.js';
import { connectPid, startConnect, stopConnect } from '../../src/stack/connect.js';
import { collectUntil, stackConfig, testDatabase, testKafka, uniqueName } from '../helpers/stack.js';

const db = testDatabase();
const kafka = testKafka();
const log = (line: string) => process.stdout.write(`# ${line}\n`);

after(async () => {
  // Leave the stack as the next test file expects it, whatever happened here.
  if (connectPid(stackConfig) === undefined) await startConnect(stackConfig, resolveArtifacts(stackConfig, log), log);
  await db.destroy();
});

describe('Kafka Connect crash', () => {
  it('loses no row when Connect is SIGKILLed mid-stream and restarted', async () => {
    const topic = uniqueName('test.outbox.crash');
    await ensureTopics(kafka, [topic]);
    const written = new Map<string, { key: string; seq: number }>();
    const transactions = 150;
    let killedAt = -1;
    for (let t = 0; t < transactions; t++) {
      const batch = Array.from({ length: 10 }, (_, i) => ({ key: `key-${i}`, seq: t }));
      const ids = await db.transaction().execute((trx) =>
        writeOutbox(
          trx,
          batch.map((b) => ({ topic, key: b.key, aggregateType: 'test', eventType: 'crash', payload: b })),
        ),
      );
      ids.forEach((id, i) => written.set(id, batch[i] ?? { key: '', seq: -1 }));
      if (t === 40) {
        assert.ok(await stopConnect(stackConfig, 'SIGKILL'), 'Connect was running and got killed');
        killedAt = t;
      }
      await sleep(10);
    }
    assert.equal(killedAt, 40);
    assert.equal(connectPid(stackConfig), undefined);
    // Rows committed while Connect was down wait in the replication slot.
    await startConnect(stackConfig, resolveArtifacts(stackConfig, log), log);

    const { records } = await collectUntil(
      kafka,
      [topic],
      (c) => new Set(c.records.map((r) => r.id)).size >= written.size,
      { timeoutMs: 180_000 },
    );
    const received = new Set(records.map((r) => r.id));
    assert.deepEqual(received, new Set(written.keys()), 'every committed row arrived, nothing else did');
    for (const r of records) {
      assert.deepEqual(r.payload, written.get(r.id), `record ${r.id} carries its own row's payload`);
      assert.equal(r.key, written.get(r.id)?.key);
    }
    const duplicates = records.length - received.size;
    log(`crash test: ${written.size} rows, ${records.length} records, ${duplicates} duplicates (same id)`);
    // Per key, first deliveries still come in commit order.
    const last = new Map<string, number>();
    const first = new Set<string>();
    for (const r of records) {
      if (first.has(r.id)) continue;
      first.add(r.id);
      const { key, seq } = r.payload as { key: string; seq: number };
      assert.ok(seq > (last.get(key) ?? -1), `key ${key} out of order at seq ${seq}`);
      last.set(key, seq);
    }
  });
});
