// The worker SDK on the real stack: commands written to the outbox exactly as the
// control plane writes them, replies and dead letters read back from Kafka.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KafkaMessage } from 'kafkajs';
import { sql } from 'kysely';
import { z } from 'zod';
import {
  commandTopic,
  deadLetterTopic,
  DLT_HEADERS,
  type StepCommand,
  type StepReply,
} from '../../src/protocol/messages.js';
import { createWorker } from '../../src/worker/create-worker.js';
import {
  createCompletionClient,
  defineCapability,
  retryableError,
  terminalError,
  postgresPayloadStore,
} from '../../src/worker/index.js';
import { databaseUrl, kafkaBrokers } from '../../src/stack/config.js';
import { listen } from '../helpers/listen.js';
import { capabilityName, replyKinds, workerHarness } from '../helpers/sdk-worker.js';
import { stackConfig, testResources, uniqueName } from '../helpers/stack.js';

const { db, kafka, cleanup } = testResources();

const { sendCommand, startWorker } = workerHarness(db, kafka, cleanup);

describe('worker SDK', () => {
  it('runs a handler with validated input and replies once, with when it started and who ran it', async () => {
    const name = capabilityName('charge');
    const replyTopic = uniqueName('test.replies');
    const listener = await listen(kafka, [replyTopic], cleanup);
    let context: { idempotencyKey: string; attempt: number } | undefined;
    const worker = await startWorker([
      defineCapability({
        name,
        input: z.object({ amount: z.number().positive() }),
        output: z.object({ id: z.string() }),
        handler: async (input, ctx) => {
          context = { idempotencyKey: ctx.idempotencyKey, attempt: ctx.attempt };
          return { id: `ch-${input.amount}` };
        },
      }),
    ]);
    const before = Date.now();
    const command = await sendCommand(name, replyTopic, { amount: 7 });
    await listener.until(() => listener.replies(command.executionId).length >= 1, 'a reply');
    await sleep(500);
    const replies = listener.replies(command.executionId);
    assert.deepEqual(replyKinds(replies), ['step.completed'], 'a short command gets one reply');
    const completed = replies[0];
    assert.ok(completed?.kind === 'step.completed');
    assert.deepEqual(completed.output, { id: 'ch-7' });
    assert.equal(completed.stepExecutionId, command.stepExecutionId);
    assert.equal(completed.workerId, worker.workerId);
    const startedAt = Date.parse(completed.startedAt ?? '');
    assert.ok(startedAt >= before && startedAt <= Date.parse(completed.at), 'startedAt is when the handler began');
    assert.deepEqual(context, { idempotencyKey: command.idempotencyKey, attempt: 1 });
    const raw = listener.seen.find((s) => s.value === completed);
    assert.equal(
      raw?.message.headers?.['sous-idempotency-key']?.toString(),
      command.idempotencyKey,
      'the idempotency key travels back',
    );
  });

  it('replies retryable and terminal failures with their codes', async () => {
    const name = capabilityName('pay');
    const replyTopic = uniqueName('test.replies');
    const listener = await listen(kafka, [replyTopic], cleanup);
    await startWorker([
      defineCapability({
        name,
        input: z.object({ mode: z.enum(['busy', 'declined', 'crash']) }),
        output: z.object({}),
        handler: async ({ mode }) => {
          if (mode === 'busy') throw retryableError('busy', 'try later');
          if (mode === 'declined') throw terminalError('card_declined', 'declined');
          throw new TypeError('boom');
        },
      }),
    ]);
    const busy = await sendCommand(name, replyTopic, { mode: 'busy' });
    const declined = await sendCommand(name, replyTopic, { mode: 'declined' });
    const crash = await sendCommand(name, replyTopic, { mode: 'crash' });
    const failure = (id: string) => listener.replies(id).find((r) => r.kind === 'step.failed');
    await listener.until(
      () => [busy, declined, crash].every((c) => failure(c.executionId) !== undefined),
      'three failures',
    );
    const errorOf = (id: string) => {
      const r = failure(id);
      return r?.kind === 'step.failed' ? { code: r.error.code, retryable: r.error.retryable } : undefined;
    };
    assert.deepEqual(errorOf(busy.executionId), { code: 'busy', retryable: true });
    assert.deepEqual(errorOf(declined.executionId), { code: 'card_declined', retryable: false });
    assert.deepEqual(errorOf(crash.executionId), { code: 'unhandled_error', retryable: true });
  });

  it('dead-letters invalid input (failing the step) and undecodable records, and keeps going', async () => {
    const name = capabilityName('ship');
    const replyTopic = uniqueName('test.replies');
    const topic = commandTopic(name);
    const listener = await listen(kafka, [replyTopic, deadLetterTopic(topic)], cleanup);
    const worker = await startWorker([
      defineCapability({
        name,
        input: z.object({ address: z.string() }),
        output: z.object({ ok: z.boolean() }),
        handler: async () => ({ ok: true }),
      }),
    ]);
    const invalid = await sendCommand(name, replyTopic, { address: 42 });
    // A record no outbox row produced: no headers, garbage value.
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'x', value: 'not json at all' }] });
    await producer.disconnect();
    const good = await sendCommand(name, replyTopic, { address: 'Main St' });
    const dlt = () => listener.seen.filter((s) => s.topic === deadLetterTopic(topic));
    await listener.until(
      () => dlt().length >= 2 && listener.replies(good.executionId).some((r) => r.kind === 'step.completed'),
      'two dead letters and the good reply',
    );
    const failed = listener.replies(invalid.executionId).find((r) => r.kind === 'step.failed');
    assert.ok(failed?.kind === 'step.failed');
    assert.deepEqual(
      { code: failed.error.code, retryable: failed.error.retryable },
      { code: 'input_invalid', retryable: false },
    );
    assert.match(failed.error.message, /address/);
    assert.equal(failed.deadLettered, true, 'the reply says the command waits in the DLT');
    const header = (m: KafkaMessage | undefined, name: string) => m?.headers?.[name]?.toString();
    // The two letters come from different partitions: find each by its error code.
    const first = dlt().find((l) => header(l.message, DLT_HEADERS.errorCode) === 'input_invalid');
    const second = dlt().find((l) => header(l.message, DLT_HEADERS.errorCode) === 'SOUS_MALFORMED_RECORD');
    assert.ok(first && second, 'one letter for the invalid input, one for the undecodable record');
    assert.equal(header(first.message, DLT_HEADERS.originalTopic), topic);
    assert.equal(header(first.message, DLT_HEADERS.consumerGroup), worker.groupId);
    assert.ok(header(first.message, DLT_HEADERS.originalOffset) !== undefined);
    assert.ok(header(first.message, DLT_HEADERS.originalPartition) !== undefined);
    assert.ok((header(first.message, DLT_HEADERS.errorStack) ?? '').length > 0);
    assert.equal(header(first.message, DLT_HEADERS.attempts), '1');
    assert.equal(header(first.message, 'sous-idempotency-key'), invalid.idempotencyKey, 'original headers are kept');
    assert.equal(second.message.value?.toString(), 'not json at all', 'the original value is kept');
  });

  it('dead-letters a command whose last allowed attempt fails', async () => {
    const name = capabilityName('flaky');
    const replyTopic = uniqueName('test.replies');
    const listener = await listen(kafka, [replyTopic, deadLetterTopic(commandTopic(name))], cleanup);
    await startWorker([
      defineCapability({
        name,
        input: z.object({}),
        output: z.object({}),
        handler: async () => Promise.reject(retryableError('busy', 'still busy')),
      }),
    ]);
    await sendCommand(name, replyTopic, {}, { attempt: 2, maxAttempts: 3 });
    const last = await sendCommand(name, replyTopic, {}, { attempt: 3, maxAttempts: 3 });
    await listener.until(() => listener.seen.some((s) => s.topic.endsWith('.DLT')), 'a dead letter');
    const letters = listener.seen.filter((s) => s.topic.endsWith('.DLT'));
    assert.equal(letters.length, 1, 'only the last attempt is dead-lettered');
    const earlier = await sendCommand(name, replyTopic, {}, { attempt: 1, maxAttempts: 3 });
    const failedReply = (executionId: string) =>
      listener
        .replies(executionId)
        .find((r): r is Extract<StepReply, { kind: 'step.failed' }> => r.kind === 'step.failed');
    await listener.until(
      () => failedReply(last.executionId) !== undefined && failedReply(earlier.executionId) !== undefined,
      'both failure replies',
    );
    assert.equal(failedReply(last.executionId)?.deadLettered, true, 'the last attempt waits in the DLT');
    assert.equal(failedReply(earlier.executionId)?.deadLettered, undefined, 'an attempt with retries left does not');
    const letter = letters[0];
    assert.ok(letter);
    assert.equal(letter.message.headers?.[DLT_HEADERS.errorClass]?.toString(), 'RetriesExhausted');
    assert.equal(
      (JSON.parse(letter.message.value?.toString() ?? '{}') as StepCommand).stepExecutionId,
      last.stepExecutionId,
    );
  });

  it('fetches an input sent by reference from the payload store', async () => {
    const name = capabilityName('bulk');
    const replyTopic = uniqueName('test.replies');
    const listener = await listen(kafka, [replyTopic], cleanup);
    const store = postgresPayloadStore(databaseUrl(stackConfig));
    cleanup.push(() => store.close());
    await startWorker(
      [
        defineCapability({
          name,
          input: z.object({ rows: z.array(z.number()) }),
          output: z.object({ sum: z.number() }),
          handler: async ({ rows }) => ({ sum: rows.reduce((a, b) => a + b, 0) }),
        }),
      ],
      { payloadStore: store },
    );
    const ref = randomUUID();
    const data = { rows: Array.from({ length: 20_000 }, (_, i) => i) };
    await sql`INSERT INTO sous_payload.payload (id, data, bytes) VALUES (${ref}, ${JSON.stringify(data)}::jsonb, ${JSON.stringify(data).length})`.execute(
      db,
    );
    const command = await sendCommand(name, replyTopic, undefined, {
      inputRef: { ref, bytes: JSON.stringify(data).length },
    });
    await listener.until(
      () => listener.replies(command.executionId).some((r) => r.kind === 'step.completed'),
      'the completion',
    );
    const done = listener.replies(command.executionId).find((r) => r.kind === 'step.completed');
    assert.ok(done?.kind === 'step.completed');
    assert.deepEqual(done.output, { sum: (19_999 * 20_000) / 2 });
  });

  it('never runs more handlers at once than its concurrency', async () => {
    const name = capabilityName('slow');
    const replyTopic = uniqueName('test.replies');
    const listener = await listen(kafka, [replyTopic], cleanup);
    let running = 0;
    let peak = 0;
    await startWorker(
      [
        defineCapability({
          name,
          input: z.object({}),
          output: z.object({}),
          handler: async () => {
            peak = Math.max(peak, ++running);
            await sleep(300);
            running--;
            return {};
          },
        }),
      ],
      { concurrency: 2 },
    );
    const commands = await Promise.all(Array.from({ length: 8 }, () => sendCommand(name, replyTopic, {})));
    await listener.until(
      () => commands.every((c) => listener.replies(c.executionId).some((r) => r.kind === 'step.completed')),
      'eight completions',
    );
    assert.equal(peak, 2);
  });

  it('heartbeats, and lets another process complete a deferred long command by token', async () => {
    const name = capabilityName('export');
    const replyTopic = uniqueName('test.replies');
    const listener = await listen(kafka, [replyTopic], cleanup);
    let token = '';
    await startWorker([
      defineCapability({
        name,
        input: z.object({}),
        output: z.object({ rows: z.number() }),
        handler: async (_input, ctx) => {
          await ctx.heartbeat({ percent: 50 });
          token = ctx.deferCompletion();
          return { rows: 0 };
        },
      }),
    ]);
    const command = await sendCommand(name, replyTopic, {});
    await listener.until(
      () => token !== '' && listener.replies(command.executionId).some((r) => r.kind === 'step.heartbeat'),
      'a heartbeat',
    );
    await sleep(300);
    assert.deepEqual(
      replyKinds(listener.replies(command.executionId)),
      ['step.started', 'step.heartbeat'],
      'no reply for a deferred command',
    );
    const client = createCompletionClient({ kafka, workerId: 'batch-finisher' });
    await client.completeStep(token, { rows: 1200 });
    await client.close();
    await listener.until(
      () => listener.replies(command.executionId).some((r) => r.kind === 'step.completed'),
      'the completion',
    );
    const done = listener.replies(command.executionId).find((r) => r.kind === 'step.completed');
    assert.ok(done?.kind === 'step.completed');
    assert.deepEqual(done.output, { rows: 1200 });
    assert.equal(done.workerId, 'batch-finisher');
  });

  it('drains gracefully: stop() waits for the running handler, whose reply still goes out', async () => {
    const name = capabilityName('drain');
    const replyTopic = uniqueName('test.replies');
    const listener = await listen(kafka, [replyTopic], cleanup);
    let began = false;
    const worker = createWorker({
      kafka,
      groupId: uniqueName('test-worker'),
      handleSignals: false,
      capabilities: [
        defineCapability({
          name,
          input: z.object({}),
          output: z.object({ finished: z.boolean() }),
          handler: async () => {
            began = true;
            await sleep(1500);
            return { finished: true };
          },
        }),
      ],
    });
    await worker.start();
    const command = await sendCommand(name, replyTopic, {});
    await listener.until(() => began, 'the handler to begin');
    await worker.stop();
    await listener.until(
      () => listener.replies(command.executionId).some((r) => r.kind === 'step.completed'),
      'the completion',
      5000,
    );
  });

  it('applies a side effect once when the worker is SIGKILLed after it and the command is redelivered', async () => {
    const name = capabilityName('charge');
    const replyTopic = uniqueName('test.replies');
    const listener = await listen(kafka, [replyTopic], cleanup);
    const table = uniqueName('charges').replaceAll('-', '_');
    const group = uniqueName('test-eo-worker');
    const spawnWorker = (holdMs: number): Promise<{ child: ChildProcess; lines: string[] }> => {
      const child = spawn(process.execPath, ['--import', 'tsx', join('test', 'fixtures', 'exactly-once-worker.ts')], {
        cwd: stackConfig.root,
        env: {
          ...process.env,
          BROKERS: kafkaBrokers(stackConfig).join(','),
          DATABASE_URL: databaseUrl(stackConfig),
          CAPABILITY: name,
          GROUP: group,
          TABLE: table,
          HOLD_MS: String(holdMs),
          SOUS_LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      cleanup.push(async () => void child.kill('SIGKILL'));
      const lines: string[] = [];
      return new Promise((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          lines.push(...chunk.toString().split('\n').filter(Boolean));
          if (lines.includes('worker ready')) resolve({ child, lines });
        });
        child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
      });
    };
    const first = await spawnWorker(60_000);
    const command = await sendCommand(name, replyTopic, { amount: 30 });
    const deadline = Date.now() + 30_000;
    while (!first.lines.includes('effect committed')) {
      assert.ok(Date.now() < deadline, 'the first worker applied the effect');
      await sleep(50);
    }
    const exited = new Promise((resolve) => first.child.once('exit', resolve));
    first.child.kill('SIGKILL');
    await exited;
    assert.ok(
      !listener.replies(command.executionId).some((r) => r.kind === 'step.completed'),
      'killed before replying',
    );

    await spawnWorker(0);
    await listener.until(
      () => listener.replies(command.executionId).some((r) => r.kind === 'step.completed'),
      'completion after redelivery',
      60_000,
    );
    const done = listener.replies(command.executionId).find((r) => r.kind === 'step.completed');
    assert.ok(done?.kind === 'step.completed');
    assert.deepEqual(done.output, { charged: 30 });
    const rows = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM ${sql.table(`sous_worker.${table}`)} WHERE idempotency_key = ${command.idempotencyKey}`.execute(
      db,
    );
    assert.equal(rows.rows[0]?.n, 1, 'the charge was applied exactly once');
  });
});
