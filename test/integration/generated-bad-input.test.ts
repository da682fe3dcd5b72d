// Generated bad input through the real stack (fast-check): 1,000 GraphQL requests with
// arguments of the right GraphQL types and bad content, 1,000 malformed reply records on a
// control plane's reply topic, 1,000 malformed command records on a worker's command topic.
// Each request gets data or errors whose codes say what is wrong (never an internal error);
// each record becomes a dead letter naming why; the processes keep running; and nothing else
// changes, checked by reading what the test owns before and after.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { sql } from 'kysely';
import { createApiToken } from '../../src/api/auth.js';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { OUTBOX_HEADERS } from '../../src/kafka/outbox-record.js';
import { commandTopic, deadLetterTopic, DLT_HEADERS } from '../../src/protocol/messages.js';
import { defineCapability } from '../../src/worker/index.js';
import { z } from 'zod';
import { parseDuration, parseRecipeYaml, recipe } from '../../src/recipe/index.js';
import { startTestApi } from '../helpers/api.js';
import { startTestControlPlane } from '../helpers/control-plane.js';
import { listen } from '../helpers/listen.js';
import { stepCommand, workerHarness } from '../helpers/sdk-worker.js';
import { testResources, uniqueName } from '../helpers/stack.js';

const RUNS = Number(process.env.SOUS_PROPERTY_RUNS ?? 1000);
const SEED = Number(process.env.SOUS_PROPERTY_SEED ?? Date.now() % 2 ** 31);
const { db, kafka, cleanup } = testResources();
const { startWorker } = workerHarness(db, kafka, cleanup);
const ns = uniqueName('gen').replaceAll('-', '');

/** Arbitrary text, and strings that have broken parsers before. */
const text = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('', ' ', '\u0000', 'null', '{}', '[]', '../..', "'; DROP TABLE x; --", '%s%n', 'x'.repeat(5000)),
);
const junkJson = fc.oneof(fc.jsonValue({ maxDepth: 3 }), text);
const notAnExecution = fc.oneof(fc.uuid(), text);

async function produce(
  topic: string,
  messages: { key: string | null; value: Buffer | null; headers?: Record<string, Buffer> }[],
) {
  const producer = kafka.producer();
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += 200) await producer.send({ topic, messages: messages.slice(i, i + 200) });
  } finally {
    await producer.disconnect();
  }
}

describe(`generated bad input through the real stack (${RUNS} cases each, seed ${SEED})`, () => {
  describe('GraphQL arguments', () => {
    let url: string;
    let token: string;
    let executionId: string;
    const recipeName = `${ns}.held`;

    before(async () => {
      const api = await startTestApi(ns, cleanup);
      url = api.url;
      token = (await createApiToken(api.controlPlane.db, `${ns}-admin`, 'admin', 'generated-bad-input.test')).token;
      // One execution to aim at: its only step waits for a shard that never comes.
      await api.controlPlane.registerRecipe(recipe(recipeName).task('a', `test${ns}.never`).build());
      ({ executionId } = await api.controlPlane.startExecution({ recipe: recipeName }));
    });

    /** What the test owns, as rows: none of it may change. */
    async function owned() {
      const { rows } = await sql<Record<string, string>>`
        SELECT
          (SELECT count(*) FROM sous.recipe WHERE name LIKE ${`${ns}%`})::text AS recipes,
          (SELECT count(*) FROM sous.execution WHERE recipe_name LIKE ${`${ns}%`})::text AS executions,
          (SELECT string_agg(status || ':' || last_seq, ',') FROM sous.execution WHERE id = ${executionId})::text AS execution,
          (SELECT count(*) FROM sous.execution_event WHERE execution_id = ${executionId})::text AS events,
          (SELECT count(*) FROM sous.api_token WHERE name LIKE ${`${ns}%`})::text AS tokens,
          (SELECT count(*) FROM sous.dead_letter)::text AS dead_letters,
          (SELECT count(*) FROM sous.shard)::text AS shards,
          (SELECT string_agg(health, ',' ORDER BY shard_id) FROM sous.shard)::text AS health`.execute(db);
      return rows[0];
    }

    const invalidDuration = text.filter((s) => parseDuration(s) === undefined);
    const invalidYaml = text.filter((s) => {
      try {
        parseRecipeYaml(s);
        return false;
      } catch {
        return true;
      }
    });

    /** One request: an operation and variables of the right GraphQL types whose content is wrong. */
    const requests = fc.oneof(
      fc.record({
        query: fc.constant(
          'mutation($r: String!, $v: Int, $i: JSON, $d: String) { startRecipe(recipe: $r, version: $v, input: $i, deadline: $d) { executionId } }',
        ),
        variables: fc.oneof(
          fc.record({ r: text.map((s) => `${ns}-nope-${s}`), i: junkJson }),
          fc.record({ r: fc.constant(recipeName), v: fc.integer().filter((v) => v !== 1) }),
          fc.record({ r: fc.constant(recipeName), d: invalidDuration }),
        ),
      }),
      fc.record({
        query: fc.constantFrom(
          'mutation($id: ID!) { cancelExecution(id: $id) { id } }',
          'mutation($id: ID!) { pauseExecution(id: $id) { id } }',
          'mutation($id: ID!) { resumeExecution(id: $id) { id } }',
          'mutation($id: ID!) { drainShard(id: $id) { id } }',
          'mutation($id: ID!) { resumeShard(id: $id) { id } }',
          'query($id: ID!) { execution(id: $id) { id status } }',
        ),
        variables: fc.record({ id: notAnExecution }),
      }),
      fc.record({
        query: fc.constantFrom(
          'mutation($e: ID!, $k: String!) { retryStep(executionId: $e, stepKey: $k) { id } }',
          'mutation($e: ID!, $k: String!) { skipStep(executionId: $e, stepKey: $k, output: 1) { id } }',
          'mutation($e: ID!, $k: String!) { rerunFromStep(executionId: $e, stepId: $k) { id } }',
        ),
        variables: fc.oneof(
          fc.record({ e: fc.constant('EXECUTION'), k: text.map((s) => `nope-${s}`) }),
          fc.record({ e: notAnExecution, k: text }),
        ),
      }),
      fc.record({
        query: fc.constant(
          'mutation($e: ID!, $n: String!, $p: JSON) { signal(executionId: $e, name: $n, payload: $p) { id } }',
        ),
        variables: fc.record({ e: notAnExecution, n: text, p: junkJson }),
      }),
      fc.record({
        query: fc.constantFrom(
          'mutation($ids: [ID!]) { reprocessDeadLetters(ids: $ids) { id outcome } }',
          'mutation($ids: [ID!]) { discardDeadLetters(ids: $ids) }',
        ),
        variables: fc.record({ ids: fc.array(notAnExecution, { maxLength: 5 }) }),
      }),
      fc.record({
        query: fc.constant('mutation($y: String) { registerRecipe(yaml: $y) { name } }'),
        variables: fc.record({ y: invalidYaml }),
      }),
      fc.record({
        query: fc.constant('mutation($j: JSON) { registerRecipe(json: $j) { name } }'),
        variables: fc.record({
          j: fc.oneof(
            fc.jsonValue({ maxDepth: 2 }),
            fc.record({ name: text.map((s) => `${ns}-${s}`), steps: junkJson }),
          ),
        }),
      }),
      fc.record({
        query: fc.constant('mutation($n: String!) { revokeApiToken(name: $n) }'),
        variables: fc.record({ n: text.map((s) => `${ns}-nope-${s}`) }),
      }),
      fc.record({
        query: fc.constant('query($f: Int, $a: String) { executions(first: $f, after: $a) { edges { node { id } } } }'),
        variables: fc.record({ f: fc.integer({ min: -1000, max: 1_000_000 }), a: text }),
      }),
      fc.record({
        query: fc.constant(
          'query($f: Int, $c: String, $e: ID) { deadLetters(first: $f, filter: { capability: $c, executionId: $e }) { id } }',
        ),
        variables: fc.record({ f: fc.integer({ min: -1000, max: 1_000_000 }), c: text, e: notAnExecution }),
      }),
    );

    it('answers each request with data or coded errors, and changes nothing', async () => {
      const before = await owned();
      let refused = 0;
      await fc.assert(
        fc.asyncProperty(requests, async ({ query, variables }) => {
          const vars = JSON.parse(
            JSON.stringify(variables).replaceAll('"EXECUTION"', JSON.stringify(executionId)),
          ) as unknown;
          const response = await fetch(`${url}/graphql`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body: JSON.stringify({ query, variables: vars }),
            signal: AbortSignal.timeout(30_000),
          });
          assert.ok(response.status === 200 || response.status === 400, `HTTP ${response.status}`);
          const body = (await response.json()) as {
            data?: unknown;
            errors?: { message: string; extensions?: { code?: string } }[];
          };
          for (const error of body.errors ?? []) {
            const code = error.extensions?.code;
            assert.ok(typeof code === 'string' && code !== 'SOUS_INTERNAL', `${query}: ${JSON.stringify(error)}`);
            assert.ok(error.message.length > 0);
          }
          if ((body.errors ?? []).length > 0) refused++;
          else assert.ok(body.data !== undefined && body.data !== null, 'no errors: data');
        }),
        { numRuns: RUNS, seed: SEED },
      );
      assert.ok(refused > RUNS / 2, `most generated requests are refused (${refused})`);
      assert.deepEqual(await owned(), before, 'nothing the test owns changed');
      // Still serving.
      const health = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({
          query: 'query($id: ID!) { execution(id: $id) { status } }',
          variables: { id: executionId },
        }),
      });
      assert.equal(health.status, 200);
    });
  });

  describe('Kafka records', () => {
    it('dead-letters every malformed reply record, naming why, and changes no execution', async () => {
      const cp: ControlPlane & { replyTopic: string } = await startTestControlPlane({
        routing: 'static',
        unknownExecutionGraceMs: 1_000,
      });
      cleanup.push(() => cp.stop());
      await cp.registerRecipe(recipe(`${ns}.r`).task('a', `test${ns}.r`).build());
      const { executionId } = await cp.startExecution({ recipe: `${ns}.r` });
      const eventsBefore = await sql<{ n: string }>`
        SELECT count(*)::text AS n FROM sous.execution_event WHERE execution_id = ${executionId}`.execute(db);
      const base = {
        kind: 'step.completed',
        messageId: randomUUID(),
        executionId,
        stepExecutionId: randomUUID(),
        workerId: 'w',
        at: new Date().toISOString(),
      };
      // Records no control plane can apply: not JSON, not a reply, or a reply missing what it needs.
      const records = fc.sample(
        fc.oneof(
          fc
            .uint8Array({ minLength: 1, maxLength: 64 })
            .map((b) => Buffer.from(b))
            .filter((b) => {
              try {
                JSON.parse(b.toString('utf8'));
                return false;
              } catch {
                return true;
              }
            }),
          fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v))),
          fc
            .constantFrom('kind', 'messageId', 'executionId', 'stepExecutionId', 'workerId')
            .chain((field) =>
              junkJson.map((value) => ({
                ...base,
                [field]: typeof value === 'string' && value.length > 0 ? 7 : value,
              })),
            )
            .map((v) => Buffer.from(JSON.stringify(v))),
        ),
        { numRuns: RUNS, seed: SEED },
      );
      const listener = await listen(kafka, [deadLetterTopic(cp.replyTopic)], cleanup, { partitions: 1 });
      await produce(
        cp.replyTopic,
        records.map((value) => ({ key: executionId, value })),
      );
      await listener.until(() => listener.seen.length >= RUNS, `${RUNS} dead letters`, 180_000);
      assert.equal(listener.seen.length, RUNS, 'one dead letter per record');
      for (const { message } of listener.seen) {
        assert.ok((message.headers?.[DLT_HEADERS.errorMessage]?.toString() ?? '').length > 0, 'each says why');
        assert.match(message.headers?.[DLT_HEADERS.errorCode]?.toString() ?? '', /^SOUS_[A-Z_]+$/);
      }
      const eventsAfter = await sql<{ n: string }>`
        SELECT count(*)::text AS n FROM sous.execution_event WHERE execution_id = ${executionId}`.execute(db);
      assert.equal(eventsAfter.rows[0]?.n, eventsBefore.rows[0]?.n, 'no reply was applied');
      assert.equal((await cp.readiness()).ready, true, 'the control plane still runs');
    });

    it('dead-letters every malformed command record, naming why, and runs no handler', async () => {
      let handled = 0;
      const name = `test${ns}.cmd`;
      const topic = commandTopic(name);
      const listener = await listen(kafka, [deadLetterTopic(topic)], cleanup, { partitions: 1 });
      await startWorker([
        defineCapability({
          name,
          input: z.unknown(),
          output: z.unknown(),
          handler: () => {
            handled++;
            return Promise.resolve({});
          },
        }),
      ]);
      const good = stepCommand(name, `test.${ns}.replies`, { input: {} });
      const records = fc.sample(
        fc.oneof(
          fc.record({
            id: fc.uuid(),
            value: fc
              .constantFrom(
                'kind',
                'executionId',
                'stepExecutionId',
                'capability',
                'attempt',
                'replyTopic',
                'idempotencyKey',
              )
              .chain((field) => fc.constantFrom(null, 0, '', [], {}).map((value) => ({ ...good, [field]: value })))
              .map((v) => Buffer.from(JSON.stringify(v))),
          }),
          fc.record({ id: text, value: fc.constant(Buffer.from(JSON.stringify(good))) }),
          fc.record({ id: fc.uuid(), value: fc.uint8Array({ maxLength: 32 }).map((b) => Buffer.from(b)) }),
        ),
        { numRuns: RUNS, seed: SEED },
      );
      await produce(
        topic,
        records.map(({ id, value }) => ({
          key: 'k',
          value,
          headers: {
            [OUTBOX_HEADERS.id]: Buffer.from(id),
            [OUTBOX_HEADERS.eventType]: Buffer.from('step.command'),
            [OUTBOX_HEADERS.aggregateType]: Buffer.from('execution'),
          },
        })),
      );
      await listener.until(() => listener.seen.length >= RUNS, `${RUNS} dead letters`, 180_000);
      assert.equal(listener.seen.length, RUNS, 'one dead letter per record');
      assert.equal(handled, 0, 'no malformed command reached a handler');
      for (const { message } of listener.seen) {
        assert.ok((message.headers?.[DLT_HEADERS.errorMessage]?.toString() ?? '').length > 0, 'each says why');
      }
    });
  });
});
