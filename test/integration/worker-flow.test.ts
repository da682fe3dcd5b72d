// The worker's reply and consumption rules on the real stack: one reply for a short
// command, step.started only when needed, commands of one partition run side by side (one
// at a time per key), and a command longer than the session timeout runs once while
// others keep flowing. Commands go through the outbox, as the control plane writes them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { createCoalescingProducer } from '../../src/kafka/coalescing-producer.js';
import { createRecordProducer, type RecordProducer } from '../../src/kafka/producer.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import { commandTopic, type StepCommand, type StepReply } from '../../src/protocol/messages.js';
import { defineCapability } from '../../src/worker/index.js';
import { listen } from '../helpers/listen.js';
import { capabilityName, replyKinds, workerHarness } from '../helpers/sdk-worker.js';
import { testResources, uniqueName } from '../helpers/stack.js';

const { db, kafka, cleanup } = testResources();

const { sendCommands, startWorker } = workerHarness(db, kafka, cleanup);
const startOf = (r: StepReply | undefined) => (r !== undefined && 'startedAt' in r ? r.startedAt : undefined);

describe('worker replies', () => {
  it('replies step.started on its own only past the threshold, or at once for a step with timeouts', async () => {
    const name = capabilityName('mixed');
    const replyTopic = uniqueName('test.replies');
    const listener = await listen(kafka, [replyTopic], cleanup);
    await startWorker([
      defineCapability({
        name,
        input: z.object({ ms: z.number() }),
        output: z.object({}),
        handler: async ({ ms }) => {
          await sleep(ms);
          return {};
        },
      }),
    ]);
    const later = new Date(Date.now() + 600_000).toISOString();
    const [slow, withDeadline, withStartBy, withHeartbeat, fast] = await sendCommands(name, replyTopic, [
      { input: { ms: 1200 } },
      { input: { ms: 0 }, extra: { deadline: later } },
      { input: { ms: 0 }, extra: { startBy: later } },
      { input: { ms: 0 }, extra: { heartbeatTimeoutMs: 60_000 } },
      { input: { ms: 0 } },
    ]);
    assert.ok(slow && withDeadline && withStartBy && withHeartbeat && fast);
    const all = [slow, withDeadline, withStartBy, withHeartbeat, fast];
    const finished = (c: StepCommand) => listener.replies(c.executionId).some((r) => r.kind === 'step.completed');
    await listener.until(() => all.every(finished), 'five completions');
    await sleep(500);
    for (const c of [slow, withDeadline, withStartBy, withHeartbeat]) {
      const replies = listener.replies(c.executionId);
      assert.deepEqual(replyKinds(replies), ['step.started', 'step.completed'], JSON.stringify(c));
      assert.equal(startOf(replies[0]), startOf(replies[1]), 'both replies carry the same start');
    }
    assert.deepEqual(replyKinds(listener.replies(fast.executionId)), ['step.completed']);
    assert.ok(startOf(listener.replies(fast.executionId)[0]) !== undefined);
  });

  it('runs commands of one partition side by side, but one at a time and in order per key', async () => {
    const name = capabilityName('keyed');
    const topic = commandTopic(name);
    await ensureTopics(kafka, [topic], { partitions: 1 });
    const replyTopic = uniqueName('test.replies');
    const listener = await listen(kafka, [replyTopic], cleanup);
    const log: { key: string; seq: number; edge: 'start' | 'end' }[] = [];
    let running = 0;
    let peak = 0;
    await startWorker(
      [
        defineCapability({
          name,
          input: z.object({ key: z.string(), seq: z.number() }),
          output: z.object({}),
          handler: async ({ key, seq }) => {
            peak = Math.max(peak, ++running);
            log.push({ key, seq, edge: 'start' });
            await sleep(300);
            log.push({ key, seq, edge: 'end' });
            running--;
            return {};
          },
        }),
      ],
      { concurrency: 4 },
    );
    const commands = await sendCommands(
      name,
      replyTopic,
      [
        ['a', 1],
        ['b', 1],
        ['a', 2],
        ['c', 1],
        ['a', 3],
        ['b', 2],
      ].map(([key, seq]) => ({ input: { key, seq }, key: String(key) })),
    );
    await listener.until(
      () => commands.every((c) => listener.replies(c.executionId).some((r) => r.kind === 'step.completed')),
      'six completions',
    );
    assert.ok(peak > 1, `commands of one partition ran side by side (peak ${peak})`);
    assert.ok(peak <= 4, `never more than the concurrency (peak ${peak})`);
    for (const key of ['a', 'b']) {
      const edges = log.filter((e) => e.key === key).map((e) => `${e.edge}${e.seq}`);
      const expected = log
        .filter((e) => e.key === key && e.edge === 'start')
        .map((e) => e.seq)
        .sort()
        .flatMap((seq) => [`start${seq}`, `end${seq}`]);
      assert.deepEqual(edges, expected, `key ${key}: one at a time, in order`);
    }
  });

  it('runs a command three times as long as the session timeout once, while others keep flowing', async () => {
    const name = capabilityName('long');
    const topic = commandTopic(name);
    // One partition: the short commands queue behind the long one in the same partition.
    await ensureTopics(kafka, [topic], { partitions: 1 });
    const replyTopic = uniqueName('test.replies');
    const listener = await listen(kafka, [replyTopic], cleanup);
    const sessionTimeoutMs = 6000;
    const runs = new Map<string, number>();
    let longRunning = false;
    await startWorker(
      [
        defineCapability({
          name,
          input: z.object({ id: z.string(), ms: z.number() }),
          output: z.object({}),
          handler: async ({ id, ms }) => {
            runs.set(id, (runs.get(id) ?? 0) + 1);
            if (ms > 0) longRunning = true;
            await sleep(ms);
            if (ms > 0) longRunning = false;
            return {};
          },
        }),
      ],
      { sessionTimeoutMs },
    );
    const [long] = await sendCommands(name, replyTopic, [{ input: { id: 'long', ms: 3 * sessionTimeoutMs } }]);
    assert.ok(long);
    await listener.until(() => longRunning, 'the long command to start');
    // Past one session timeout, so a member that stopped heartbeating would be out by now.
    await sleep(sessionTimeoutMs + 1000);
    const [short] = await sendCommands(name, replyTopic, [{ input: { id: 'short', ms: 0 } }]);
    assert.ok(short);
    await listener.until(
      () => listener.replies(short.executionId).some((r) => r.kind === 'step.completed'),
      'the short command to complete',
    );
    assert.ok(longRunning, 'the short command completed while the long one ran');
    await listener.until(
      () => listener.replies(long.executionId).some((r) => r.kind === 'step.completed'),
      'the long command to complete',
      60_000,
    );
    // A redelivery after a rebalance would run it again within moments of the rejoin.
    await sleep(3000);
    assert.equal(runs.get('long'), 1, 'the long command ran once');
    assert.equal(runs.get('short'), 1);
    assert.deepEqual(
      replyKinds(listener.replies(long.executionId)),
      ['step.started', 'step.completed'],
      'one started (past the threshold), one completed',
    );
  });

  it('sends what was queued while a send was in flight together, in order', async () => {
    const topic = uniqueName('test.coalesce');
    const listener = await listen(kafka, [topic], cleanup, { partitions: 1 });
    let sends = 0;
    const real = createRecordProducer(kafka);
    const counting: RecordProducer = {
      send: async (records) => {
        sends++;
        await real.send(records);
      },
      disconnect: () => real.disconnect(),
    };
    const producer = createCoalescingProducer(counting);
    cleanup.push(() => producer.disconnect());
    await producer.send([{ topic, key: 'k', value: JSON.stringify({ n: -1 }) }]); // connects
    sends = 0;
    await Promise.all(
      Array.from({ length: 50 }, (_, n) => producer.send([{ topic, key: 'k', value: JSON.stringify({ n }) }])),
    );
    assert.ok(sends >= 1 && sends <= 2, `50 records queued at once went in ${sends} sends`);
    await listener.until(() => listener.seen.length === 51, 'all records');
    assert.deepEqual(
      listener.seen.map((s) => (s.value as { n: number }).n),
      Array.from({ length: 51 }, (_, i) => i - 1),
      'in the order they were queued',
    );
  });
});
