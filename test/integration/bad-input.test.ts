// Bad input anywhere gets a clear error or a dead letter, and changes nothing else:
// malformed, oversized and wrongly-typed records on reply and command topics, poison
// records on dead-letter topics, outbox payloads PostgreSQL cannot store, invalid
// recipes and invalid configuration. Each test uses its own topics, groups and names.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IHeaders, KafkaMessage } from 'kafkajs';
import { sql } from 'kysely';
import { z } from 'zod';
import { createControlPlane } from '../../src/control-plane/control-plane.js';
import { runDeadLetterIngest, type DeadLetterRow } from '../../src/control-plane/dead-letters.js';
import { getEvents, getExecution } from '../../src/control-plane/queries.js';
import { ConfigInvalidError, OutboxMessageInvalidError } from '../../src/errors.js';
import { OUTBOX_HEADERS } from '../../src/kafka/outbox-record.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import { logger } from '../../src/logger.js';
import type { OutboxMessage } from '../../src/outbox/outbox-message.js';
import { writeOutbox } from '../../src/outbox/write-outbox.js';
import {
  commandTopic,
  deadLetterTopic,
  DLT_HEADERS,
  stepCommandSchema,
  type StepReply,
} from '../../src/protocol/messages.js';
import { compileRecipe, parseRecipeYaml, RecipeInvalidError, type RecipeIssue } from '../../src/recipe/index.js';
import type { RecipePlan } from '../../src/recipe/plan.js';
import { defineCapability, WorkerConfigError } from '../../src/worker/index.js';
import { createWorker } from '../../src/worker/create-worker.js';
import { databaseUrl, kafkaBrokers, loadStackConfig, StackConfigError } from '../../src/stack/config.js';
import { startTestControlPlane, waitForExecution } from '../helpers/control-plane.js';
import { listen } from '../helpers/listen.js';
import { stepCommand, workerHarness } from '../helpers/sdk-worker.js';
import { collectUntil, stackConfig, testResources, uniqueName } from '../helpers/stack.js';

const { db, kafka, cleanup } = testResources();
const { startWorker } = workerHarness(db, kafka, cleanup);

const ns = uniqueName('bad').replaceAll('-', '');
const cap = (action: string) => `test${ns}.${action}`;
const header = (m: KafkaMessage, name: string) => m.headers?.[name]?.toString();

async function produce(topic: string, messages: { key: string; value: Buffer | string | null; headers?: IHeaders }[]) {
  const producer = kafka.producer();
  await producer.connect();
  try {
    // One at a time, in order: the tests rely on the order within a partition.
    for (const message of messages) await producer.send({ topic, messages: [message] });
  } finally {
    await producer.disconnect();
  }
}

describe('bad input on the reply topic', () => {
  it('dead-letters every record it cannot apply, naming why, changes nothing, and applies the next valid reply', async () => {
    // Static routing: this test reads the command itself, as a worker that does not announce itself would.
    const cp = await startTestControlPlane({ routing: 'static', unknownExecutionGraceMs: 2_000 });
    cleanup.push(() => cp.stop());
    const capability = cap('hold');
    const plan: RecipePlan = compileRecipe({ name: `${ns}.hold`, steps: [{ id: 'hold', capability }] });
    await cp.registerRecipe(plan);
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: {} });
    // Nobody serves the capability: read the command to learn the attempt's id.
    await ensureTopics(kafka, [commandTopic(capability)]);
    const commands = await collectUntil(kafka, [commandTopic(capability)], (c) => c.records.length >= 1);
    const command = stepCommandSchema.parse(commands.records[0]?.payload);
    assert.equal(command.executionId, executionId);
    const listener = await listen(kafka, [deadLetterTopic(cp.replyTopic)], cleanup, { partitions: 1 });

    const before = { view: await getExecution(cp.db, executionId), events: await getEvents(cp.db, executionId) };
    const reply = (extra: Record<string, unknown> = {}) =>
      JSON.stringify({
        kind: 'step.completed',
        messageId: randomUUID(),
        executionId,
        stepExecutionId: command.stepExecutionId,
        workerId: 'bad-input-test',
        at: new Date().toISOString(),
        output: { ok: true },
        ...extra,
      });
    const unknownExecution = randomUUID();
    const large = reply({ output: { blob: 'x'.repeat(1_000_000) }, surprise: true });
    // Keyed by the execution: one partition, so the valid reply comes after every poison record.
    const poison: { name: string; value: string | null; code: RegExp; reason: RegExp }[] = [
      { name: 'not JSON', value: 'not json {', code: /^SOUS_MALFORMED_RECORD$/, reason: /not JSON/ },
      { name: 'tombstone', value: null, code: /^SOUS_MALFORMED_RECORD$/, reason: /no value/ },
      {
        name: 'missing fields',
        value: '{"kind":"step.completed"}',
        code: /^SOUS_REPLY_INVALID$/,
        reason: /^invalid reply: .*messageId/,
      },
      {
        name: 'wrong types',
        value: reply({ stepExecutionId: 42, at: 'yesterday' }),
        code: /^SOUS_REPLY_INVALID$/,
        reason: /^invalid reply: .*stepExecutionId/,
      },
      { name: 'not an object', value: '[1,2,3]', code: /^SOUS_REPLY_INVALID$/, reason: /invalid reply/ },
      {
        name: 'unknown execution',
        value: reply({ executionId: unknownExecution }),
        code: /^SOUS_EXECUTION_NOT_FOUND$/,
        reason: new RegExp(unknownExecution),
      },
      {
        name: 'garbage execution id',
        value: reply({ executionId: '-'.repeat(36) }),
        code: /^SOUS_REPLY_INVALID$/,
        reason: /executionId/,
      },
      {
        name: 'NUL in the output',
        value: reply({ output: { note: 'a\u0000b' } }),
        code: /^SOUS_REPLY_INVALID$/,
        reason: /output\.note: holds a NUL character/,
      },
      { name: 'near the broker maximum', value: large, code: /^SOUS_REPLY_INVALID$/, reason: /surprise/ },
    ];
    const sentAt = Date.now();
    await produce(cp.replyTopic, [
      ...poison.map((p) => ({ key: executionId, value: p.value })),
      { key: executionId, value: reply() },
    ]);

    const done = await waitForExecution(cp, executionId);

    assert.equal(done.status, 'completed', 'the valid reply behind the poison records was applied');
    assert.deepEqual(done.steps[0]?.output, { ok: true }, 'the output is the valid reply’s, not a poison one’s');
    await listener.until(() => listener.seen.length >= poison.length, `${poison.length} dead letters`);
    // The reply naming no execution was tried again for the grace (the execution might not
    // be visible yet) before it was dead-lettered: the last dead letter came after it.
    assert.ok(Date.now() - sentAt >= 2_000, `all dead letters after ${Date.now() - sentAt} ms, within the grace`);
    assert.equal(listener.seen.length, poison.length, 'one dead letter per poison record, none for the valid reply');
    // Dead letters may come out of order (a batch dead-letters what does not parse before
    // what names no execution): match them to the poison records by original offset.
    const byOffset = [...listener.seen].sort(
      (a, b) =>
        Number(header(a.message, DLT_HEADERS.originalOffset)) - Number(header(b.message, DLT_HEADERS.originalOffset)),
    );
    poison.forEach((p, i) => {
      const letter = byOffset[i];
      assert.ok(letter, p.name);
      assert.equal(letter.message.value?.toString() ?? null, p.value, `${p.name}: the original value is kept`);
      assert.equal(letter.message.key?.toString(), executionId, `${p.name}: the original key is kept`);
      assert.equal(header(letter.message, DLT_HEADERS.originalTopic), cp.replyTopic, p.name);
      assert.match(header(letter.message, DLT_HEADERS.originalOffset) ?? '', /^\d+$/, p.name);
      assert.match(header(letter.message, DLT_HEADERS.errorCode) ?? '', p.code, p.name);
      assert.match(header(letter.message, DLT_HEADERS.errorMessage) ?? '', p.reason, p.name);
      assert.ok((header(letter.message, DLT_HEADERS.consumerGroup) ?? '').length > 0, p.name);
    });

    // Nothing but the valid reply changed the execution.
    const events = await getEvents(cp.db, executionId);
    assert.deepEqual(events.slice(0, before.events.length), before.events, 'earlier events are untouched');
    assert.deepEqual(
      events.slice(before.events.length).map((e) => e.type),
      ['StepCompleted', 'ExecutionCompleted'],
    );
    assert.equal(before.view.status, 'running');
    // The unknown execution's reply left nothing: no event, no execution, no dedupe row
    // (replies other than heartbeats are recognised by the attempt state, not by a row).
    const left = await sql<{ events: string; executions: string; processed: string }>`
      SELECT (SELECT count(*) FROM sous.execution_event WHERE execution_id = ${unknownExecution}) AS events,
        (SELECT count(*) FROM sous.execution WHERE id = ${unknownExecution}) AS executions,
        (SELECT count(*) FROM sous.processed_message
         WHERE execution_id IN (${executionId}, ${unknownExecution})) AS processed`.execute(db);
    assert.deepEqual(left.rows[0], { events: '0', executions: '0', processed: '0' });
  });
});

describe('bad input on a command topic (worker SDK)', () => {
  it('dead-letters undecodable, wrongly-typed, misrouted and invalid-input commands, and keeps consuming', async () => {
    const name = cap('ship');
    const topic = commandTopic(name);
    const replyTopic = uniqueName('test.replies');
    const listener = await listen(kafka, [replyTopic, deadLetterTopic(topic)], cleanup, { partitions: 1 });
    const handled: unknown[] = [];
    const worker = await startWorker([
      defineCapability({
        name,
        input: z.object({ address: z.string() }),
        output: z.object({ shipped: z.string() }),
        handler: async (input) => {
          handled.push(input);
          // An output PostgreSQL could not store: the SDK fails the step instead of replying it.
          return { shipped: input.address === 'nul' ? 'a\u0000b' : input.address };
        },
      }),
    ]);

    const key = uniqueName('same-partition');
    // `extra` may break the command's schema: these are poison commands.
    const commandFor = (input: unknown, extra: Record<string, unknown> = {}) => ({
      ...stepCommand(name, replyTopic, { input, stepId: 'ship' }),
      ...extra,
    });
    const outboxHeaders = () => ({
      [OUTBOX_HEADERS.id]: randomUUID(),
      [OUTBOX_HEADERS.eventType]: 'step.command',
      [OUTBOX_HEADERS.aggregateType]: 'execution',
    });
    // Records no outbox row produced: outbox headers but no JSON value, and no value at all.
    await produce(topic, [
      { key, value: '{"kind": "step.command", ', headers: outboxHeaders() },
      { key, value: null, headers: outboxHeaders() },
    ]);
    const wrongTypes = commandFor({ address: 'A' }, { attempt: 'first', stepExecutionId: 'nope' });
    const otherCapability = commandFor({ address: 'B' }, { capability: cap('fly') });
    const invalidInput = commandFor({ address: 42 });
    const nulOutput = commandFor({ address: 'nul' });
    const good = commandFor({ address: 'Main St' });
    const message = (payload: unknown): OutboxMessage => ({
      topic,
      key,
      aggregateType: 'execution',
      eventType: 'step.command',
      payload,
    });
    await db
      .transaction()
      .execute((trx) => writeOutbox(trx, [wrongTypes, otherCapability, invalidInput, nulOutput, good].map(message)));

    const letters = () => listener.seen.filter((s) => s.topic === deadLetterTopic(topic));
    const repliesOf = (id: string) =>
      listener.seen
        .filter((s) => s.topic === replyTopic && (s.value as StepReply | undefined)?.executionId === id)
        .map((s) => s.value as StepReply);
    await listener.until(
      () => letters().length >= 5 && repliesOf(good.executionId).some((r) => r.kind === 'step.completed'),
      'five dead letters and the good command’s completion',
    );
    // All in one partition, in order: the good command ran after every poison record.
    const expected: [string, RegExp][] = [
      ['SOUS_MALFORMED_RECORD', /the value is not JSON/],
      ['SOUS_MALFORMED_RECORD', /the value is missing/],
      ['SOUS_COMMAND_INVALID', /invalid step command: .*stepExecutionId.*attempt|attempt.*stepExecutionId/],
      ['SOUS_COMMAND_INVALID', new RegExp(`command for ${cap('fly')} arrived on ${topic}`)],
      ['input_invalid', /input of .* is invalid: address/],
    ];
    assert.deepEqual(
      letters().map((l) => header(l.message, DLT_HEADERS.errorCode)),
      expected.map(([code]) => code),
    );
    letters().forEach((letter, i) => {
      assert.match(header(letter.message, DLT_HEADERS.errorMessage) ?? '', expected[i]?.[1] ?? /^$/);
      assert.equal(header(letter.message, DLT_HEADERS.originalTopic), topic);
      assert.equal(header(letter.message, DLT_HEADERS.consumerGroup), worker.groupId);
      assert.equal(letter.message.key?.toString(), key, 'the original key is kept');
    });
    // A command that cannot be addressed gets no reply; one with invalid input fails its step for good.
    assert.deepEqual(repliesOf(wrongTypes.executionId), []);
    assert.deepEqual(repliesOf(otherCapability.executionId), []);
    const failed = repliesOf(invalidInput.executionId);
    assert.deepEqual(
      failed.map((r) => (r.kind === 'step.failed' ? [r.error.code, r.error.retryable, r.deadLettered] : r.kind)),
      [['input_invalid', false, true]],
    );
    assert.deepEqual(
      repliesOf(nulOutput.executionId).map((r) =>
        r.kind === 'step.failed'
          ? [r.error.code, r.error.retryable, /shipped holds a NUL/.test(r.error.message)]
          : r.kind,
      ),
      [['output_invalid', false, true]],
    );
    assert.deepEqual(
      repliesOf(good.executionId).map((r) => r.kind),
      // One reply per step: a short command with no timeouts sends no step.started.
      ['step.completed'],
    );
    assert.deepEqual(handled, [{ address: 'nul' }, { address: 'Main St' }], 'the handler only saw the valid commands');
  });
});

describe('poison records on dead-letter topics', () => {
  it('are stored (minimally when PostgreSQL refuses them as they are) and the ingest moves on', async () => {
    const topic = `test.${ns}.ingest.DLT`;
    await ensureTopics(kafka, [topic], { partitions: 1 });
    const dlt = (extra: IHeaders = {}): IHeaders => ({
      [DLT_HEADERS.originalTopic]: `test.${ns}.ingest`,
      [DLT_HEADERS.originalPartition]: '0',
      [DLT_HEADERS.originalOffset]: '7',
      [DLT_HEADERS.errorClass]: 'ReplyInvalidError',
      [DLT_HEADERS.errorCode]: 'SOUS_REPLY_INVALID',
      [DLT_HEADERS.errorMessage]: 'invalid reply',
      [DLT_HEADERS.attempts]: '1',
      [DLT_HEADERS.failedAt]: new Date().toISOString(),
      ...extra,
    });
    const nulJson = Buffer.from('{"kind":"step.completed","note":"a\\u0000b"}');
    const nulText = Buffer.from('abc\u0000def');
    const records = [
      // A look-alike execution id that no uuid column accepts.
      { key: 'k1', value: JSON.stringify({ executionId: '-'.repeat(36) }), headers: dlt() },
      // JSON holding \u0000: jsonb refuses it.
      { key: 'k2', value: nulJson, headers: dlt() },
      // Text holding NUL, with NUL in a header and the key.
      { key: 'k3\u0000', value: nulText, headers: dlt({ [DLT_HEADERS.errorMessage]: 'bad\u0000thing' }) },
      // Headers that are not what their columns hold.
      {
        key: 'k4',
        value: '{"fine":true}',
        headers: dlt({
          [DLT_HEADERS.originalOffset]: 'abc',
          [DLT_HEADERS.originalPartition]: '99999999999',
          [DLT_HEADERS.attempts]: '-1',
          [DLT_HEADERS.failedAt]: 'yesterday',
        }),
      },
      { key: 'k5', value: '{"ok":true}', headers: dlt() },
    ];
    await produce(topic, records);
    const ingest = await runDeadLetterIngest({
      kafka,
      db,
      groupId: uniqueName('test-dead-letters'),
      topicPattern: new RegExp(`^test\\.${ns}\\.ingest\\.DLT$`),
      refreshMs: 1000,
      logger,
    });
    cleanup.push(() => ingest.stop());
    const stored = async () =>
      (
        await sql<DeadLetterRow>`
          SELECT * FROM sous.dead_letter WHERE dlt_topic = ${topic} ORDER BY dlt_offset`.execute(db)
      ).rows;
    const deadline = Date.now() + 60_000;
    while ((await stored()).length < records.length) {
      assert.ok(Date.now() < deadline, `only ${(await stored()).length} of ${records.length} dead letters stored`);
      await sleep(200);
    }
    const [dashes, json, text, headers, ok] = await stored();
    assert.ok(dashes && json && text && headers && ok);
    assert.equal(dashes.execution_id, null, 'a look-alike execution id is not taken for one');
    assert.deepEqual(dashes.payload, { executionId: '-'.repeat(36) });

    assert.equal(json.payload, null);
    assert.equal(json.payload_text, `base64:${nulJson.toString('base64')}`, 'the raw value is kept, losslessly');
    assert.equal(json.error_code, 'SOUS_REPLY_INVALID');
    assert.equal(json.original_topic, `test.${ns}.ingest`);

    assert.equal(text.payload, null);
    assert.equal(text.payload_text, `base64:${nulText.toString('base64')}`);
    assert.equal(text.error_message, 'bad\uFFFDthing', 'NUL in a header is replaced');
    assert.equal(text.headers[DLT_HEADERS.errorMessage], 'bad\uFFFDthing');
    assert.equal(text.message_key, 'k3\uFFFD');

    assert.deepEqual(headers.payload, { fine: true });
    assert.deepEqual(
      [headers.original_offset, headers.original_partition, headers.attempts, headers.failed_at],
      [null, null, null, null],
      'headers that are not numbers or instants are left out of typed columns',
    );
    assert.equal(headers.headers[DLT_HEADERS.failedAt], 'yesterday', 'but kept among the headers');

    assert.deepEqual(ok.payload, { ok: true });
    assert.equal(ok.original_offset, '7');
    assert.equal(ok.attempts, 1);
    assert.ok(ok.failed_at !== null);
  });
});

describe('outbox payloads PostgreSQL cannot store', () => {
  it('are refused with a clear error before any write, leaving the transaction usable', async () => {
    const topic = `test.${ns}.outbox`;
    const circular: Record<string, unknown> = { a: 1 };
    circular.self = circular;
    const message = (payload: unknown, extra: Partial<OutboxMessage> = {}): OutboxMessage => ({
      topic,
      key: 'k',
      aggregateType: 'test',
      eventType: 'bad-input',
      payload,
      ...extra,
    });
    const refusals: [OutboxMessage, RegExp][] = [
      [message(circular), /messages\.0\.payload is not JSON-serialisable \(Converting circular structure/],
      [message({ note: 'a\u0000b' }), /messages\.0\.payload holds a NUL character .* at key "note"/],
      [message({ ['k\u0000']: 1 }), /messages\.0\.payload holds a NUL character/],
      [message(1, { key: 'a\u0000' }), /messages\.0\.key: key must not hold a NUL character/],
      [message(1, { headers: { h: '\u0000' } }), /messages\.0\.headers\.h: header values must not hold a NUL/],
    ];
    await ensureTopics(kafka, [topic]);
    await db.transaction().execute(async (trx) => {
      for (const [bad, reason] of refusals) {
        await assert.rejects(writeOutbox(trx, [message({ fine: 'beside' }), bad]), (error: unknown) => {
          assert.ok(error instanceof OutboxMessageInvalidError, String(error));
          assert.equal(error.code, 'SOUS_OUTBOX_MESSAGE_INVALID');
          assert.equal(error.retryable, false);
          assert.match(error.message, new RegExp(reason.source.replace('messages\\.0', 'messages\\.1')));
          return true;
        });
      }
      // No statement failed: the transaction still works, and commits one message.
      await writeOutbox(trx, [message({ fine: 'after' })]);
    });
    await collectUntil(kafka, [topic], (c) => c.records.length >= 1);
    await sleep(2000); // Anything a refused call wrote would have arrived with it.
    const collected = await collectUntil(kafka, [topic], (c) => c.records.length >= 1);
    assert.deepEqual(
      collected.records.map((r) => r.payload),
      [{ fine: 'after' }],
      'only the message of the successful call reached Kafka (not the valid ones beside bad ones)',
    );
    assert.equal(collected.malformed.length, 0);
  });
});

describe('invalid recipes', () => {
  const issuesOf = (yaml: string): RecipeIssue[] => {
    try {
      parseRecipeYaml(yaml);
    } catch (error) {
      assert.ok(error instanceof RecipeInvalidError, String(error));
      assert.equal(error.code, 'SOUS_RECIPE_INVALID');
      assert.equal(error.retryable, false);
      return [...error.issues];
    }
    assert.fail('the recipe was accepted');
  };

  it('are refused with the path and reason of each problem, and nothing is registered', async () => {
    const name = `${ns}.invalid`;
    const cases: [string, string, RegExp][] = [
      [`name: ${name}\nsteps:\n  - id: a\n    capability: x.a\n   bad-indent: 1\n`, '', /^YAML line \d+:\d+/],
      [`name: ${name}\nsteps:\n  - id: a\n    capability: 42\n`, 'steps[0].capability', /./],
      [`name: ${name}\nsteps:\n  - id: a\n    capability: x.a\n    retry: three\n`, 'steps[0].retry', /./],
      [
        `name: ${name}\nsteps:\n  - id: a\n    capability: x.a\n  - id: a\n    capability: x.b\n`,
        'steps[1].id',
        /id a is already used at steps\[0\]/,
      ],
      [
        `name: ${name}\nsteps:\n  - id: a\n    capability: x.a\n    when: "input.("\n`,
        'steps[0].when',
        /expression does not parse/,
      ],
      [
        `name: ${name}\nsteps:\n  - id: a\n    capability: x.a\n    input:\n      n: outputs.b.n\n  - id: b\n    capability: x.b\n`,
        'steps[0].input.n',
        /outputs\.b .*later step|not .*yet/,
      ],
    ];
    for (const [yaml, path, reason] of cases) {
      const issues = issuesOf(yaml);
      const issue = issues.find((i) => i.path === path);
      assert.ok(issue, `${yaml}\n→ ${JSON.stringify(issues)}`);
      assert.match(issue.message, reason, JSON.stringify(issues));
    }
    const registered = await sql`SELECT 1 FROM sous.recipe WHERE name = ${name}`.execute(db);
    assert.equal(registered.rows.length, 0, 'nothing registered');
  });
});

describe('invalid configuration', () => {
  it('names the stack variable that is wrong', () => {
    const wrong: [NodeJS.ProcessEnv, RegExp][] = [
      [{ SOUS_CONNECT_PORT: '70000' }, /SOUS_CONNECT_PORT must be between 1024 and 65535/],
      [{ SOUS_KAFKA_CONTROLLER_PORT: '19093.5' }, /SOUS_KAFKA_CONTROLLER_PORT must be an integer/],
      [{ SOUS_PG_PORT: '' }, /SOUS_PG_PORT/],
      [{ SOUS_KAFKA_PORT: '15432' }, /must differ/],
      [{ SOUS_JVM_HEAP: 'lots' }, /SOUS_JVM_HEAP must look like 512m or 1g/],
    ];
    for (const [env, reason] of wrong) {
      assert.throws(
        () => loadStackConfig(env),
        (e: unknown) => {
          assert.ok(e instanceof StackConfigError, String(e));
          assert.equal(e.code, 'SOUS_STACK_CONFIG_INVALID');
          assert.match(e.message, reason);
          return true;
        },
        JSON.stringify(env),
      );
    }
  });

  it('names the control-plane option that is wrong, before connecting to anything', () => {
    const valid = { databaseUrl: databaseUrl(stackConfig), brokers: kafkaBrokers(stackConfig) };
    const wrong: [Record<string, unknown>, RegExp][] = [
      [{ brokers: ['nohost'] }, /brokers\.0: brokers must be host:port/],
      [{ brokers: [] }, /brokers: brokers must name at least one broker/],
      [{ databaseUrl: '' }, /databaseUrl: databaseUrl must be a PostgreSQL connection string/],
      [{ replyPartitions: 0 }, /replyPartitions/],
      [{ poolSize: 2.5 }, /poolSize/],
      [{ deadLetterTopicPattern: '(' }, /deadLetterTopicPattern must be a regular expression/],
      [{ replyTopic: 42 }, /replyTopic/],
      [{ replyTopc: 'typo' }, /replyTopc/],
    ];
    for (const [options, reason] of wrong) {
      assert.throws(
        () => createControlPlane({ ...valid, ...options }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigInvalidError, String(e));
          assert.equal(e.code, 'SOUS_CONFIG_INVALID');
          assert.equal(e.retryable, false);
          assert.match(e.message, /^invalid control-plane options: /);
          assert.match(e.message, reason);
          return true;
        },
        JSON.stringify(options),
      );
    }
  });

  it('names the worker option that is wrong', () => {
    const capability = defineCapability({
      name: cap('noop'),
      input: z.object({}),
      output: z.object({}),
      handler: async () => ({}),
    });
    const wrong: [Record<string, unknown>, RegExp][] = [
      [{ capabilities: [] }, /capabilities must declare at least one capability/],
      [{ concurrency: 0 }, /concurrency must be at least 1/],
      [{ maxDeliveryAttempts: 0 }, /maxDeliveryAttempts must be at least 1/],
      [{ drainTimeoutMs: -1 }, /drainTimeoutMs/],
      [{ capabilities: [capability, capability] }, /capability declared twice/],
      [{ kafka: undefined, brokers: [] }, /give kafka or brokers/],
      [{ concurency: 4 }, /concurency/],
    ];
    for (const [options, reason] of wrong) {
      assert.throws(
        () => createWorker({ kafka, capabilities: [capability], ...options }),
        (e: unknown) => {
          assert.ok(e instanceof WorkerConfigError, String(e));
          assert.equal(e.code, 'SOUS_WORKER_CONFIG_INVALID');
          assert.match(e.message, reason);
          return true;
        },
        JSON.stringify(options),
      );
    }
    assert.throws(
      () => defineCapability({ name: 'NoDot', input: z.object({}), output: z.object({}), handler: async () => ({}) }),
      /capability name "NoDot" must look like domain\.action/,
    );
  });
});
