// Generated bad input, in process: recipe documents (YAML and JSON), configuration variables,
// reply records and command records, 1,000 generated cases or more each (fast-check). Each is
// either accepted or refused with the error class of its kind, whose code and message name what
// is wrong; nothing ever escapes as another error (a TypeError, a RangeError, a crash). The same
// kinds of input through the real stack (Kafka records, GraphQL arguments) are in
// test/integration/generated-bad-input.test.ts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { trace } from '@opentelemetry/api';
import fc from 'fast-check';
import type { KafkaMessage } from 'kafkajs';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { loadEnvironmentConfig } from '../../src/config.js';
import { parseReply } from '../../src/control-plane/apply-reply.js';
import { ReplyInvalidError } from '../../src/control-plane/errors.js';
import { ConfigInvalidError, MalformedRecordError, SousError } from '../../src/errors.js';
import { decodeOutboxRecord, OUTBOX_HEADERS } from '../../src/kafka/outbox-record.js';
import { tracingSettings } from '../../src/observability/tracing-sdk.js';
import { compileRecipe, parseRecipeYaml, RecipeInvalidError } from '../../src/recipe/index.js';
import { loadStackConfig, StackConfigError } from '../../src/stack/config.js';
import { defineCapability } from '../../src/worker/index.js';
import { Poison, runCommand, type RunEnvironment } from '../../src/worker/run-command.js';
import { logger } from '../../src/logger.js';

const RUNS = Number(process.env.SOUS_PROPERTY_RUNS ?? 1000);
const SEED = Number(process.env.SOUS_PROPERTY_SEED ?? Date.now() % 2 ** 31);
const params = { numRuns: RUNS, seed: SEED };

/** Any JSON-ish value a careless or hostile producer might send. */
const junk = fc.oneof(
  fc.anything({ maxDepth: 3, maxKeys: 5 }),
  fc.string({ maxLength: 40 }),
  fc.constantFrom(null, undefined, '', 0, -1, 1.5, Number.MAX_SAFE_INTEGER, true, [], {}, 'null', '{}', '\u0000'),
);

/** `base` with one place changed: a key set to junk, a key removed, or a value's type swapped. */
function mutated(base: unknown): fc.Arbitrary<unknown> {
  const paths: (string | number)[][] = [];
  const walk = (value: unknown, path: (string | number)[]) => {
    paths.push(path);
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, [...path, i]));
    else if (typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) walk(v, [...path, k]);
    }
  };
  walk(base, []);
  return fc
    .record({
      path: fc.constantFrom(...paths),
      extraKey: fc.option(fc.string({ minLength: 1, maxLength: 12 }), { nil: undefined }),
      value: junk,
      remove: fc.boolean(),
    })
    .map(({ path, extraKey, value, remove }) => {
      const copy = structuredClone(base) as Record<string | number, unknown>;
      const target = extraKey === undefined ? path : [...path, extraKey];
      if (target.length === 0) return value;
      let parent: unknown = copy;
      for (const part of target.slice(0, -1)) parent = (parent as Record<string | number, unknown>)[part];
      if (typeof parent !== 'object' || parent === null) return copy;
      const last = target.at(-1) as string | number;
      // A generated key on an array is no JSON change (JSON keeps indices only), and `length`
      // set to junk is a RangeError of this generator, not of the code under test (CI, stop 25).
      if (Array.isArray(parent) && typeof last === 'string') return copy;
      if (remove && !Array.isArray(parent)) Reflect.deleteProperty(parent, last);
      else (parent as Record<string | number, unknown>)[last] = value;
      return copy;
    });
}

/**
 * Runs `f`: it returns normally, or throws an error of one of `allowed`, with a code and a
 * message. Returns that error (undefined when `f` returned).
 */
function acceptedOrRefused(f: () => unknown, allowed: readonly (abstract new (...args: never[]) => Error)[]): unknown {
  try {
    f();
    return undefined;
  } catch (error) {
    assert.ok(
      allowed.some((type) => error instanceof type),
      `unexpected ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
    );
    assert.ok((error as Error).message.length > 0, 'the error says what is wrong');
    if (error instanceof SousError) assert.match(error.code, /^SOUS_[A-Z_]+$/);
    return error;
  }
}

describe(`generated bad input (${RUNS} cases each, seed ${SEED})`, () => {
  const saga: unknown = parseYaml(
    readFileSync(join(import.meta.dirname, '../../examples/recipes/order-saga.yaml'), 'utf8'),
  );

  it('recipe documents in YAML: a plan or RecipeInvalidError naming each issue', () => {
    const documents = fc.oneof(
      mutated(saga).map((doc) => stringifyYaml(doc)),
      fc.string({ maxLength: 200 }),
      fc.constantFrom('a: &x [*x]', 'name: [', '- just\n- a list', 'name: a\nname: b', '!!binary x', '{'),
    );
    fc.assert(
      fc.property(documents, (text) => {
        const error = acceptedOrRefused(() => parseRecipeYaml(text), [RecipeInvalidError]);
        if (error instanceof RecipeInvalidError) {
          assert.ok(error.issues.length > 0 && error.issues.every((i) => i.message.length > 0));
        }
      }),
      params,
    );
  });

  it('a YAML alias inside the node it names is refused with its path, not a stack overflow', () => {
    assert.throws(
      () => parseRecipeYaml('name: r\nsteps:\n  - &s { id: a, capability: x.a, input: { self: *s } }\n'),
      (error: unknown) =>
        error instanceof RecipeInvalidError &&
        error.issues[0]?.path === 'steps[0].input.self' &&
        /refers to a node that contains it/.test(error.message),
    );
  });

  it('a document that is not text (a serializer returned undefined) is refused, not a TypeError', () => {
    // Found by seed 691259193: a mutation replaced the whole document by undefined.
    const notText: unknown[] = [undefined, null, 42, {}];
    for (const text of notText) {
      assert.throws(
        () => parseRecipeYaml(text as string),
        (error: unknown) => error instanceof RecipeInvalidError && /must be text/.test(error.message),
      );
    }
  });

  it('recipe documents in JSON (authoring form and plans): a plan or RecipeInvalidError', () => {
    const plan = JSON.parse(JSON.stringify(parseRecipeYaml(stringifyYaml(saga)))) as unknown;
    fc.assert(
      fc.property(fc.oneof(mutated(saga), mutated(plan), junk), (value) => {
        acceptedOrRefused(() => compileRecipe(JSON.parse(JSON.stringify(value ?? null))), [RecipeInvalidError]);
      }),
      params,
    );
  });

  it('configuration variables: a configuration or an error naming the variable', () => {
    const controlPlaneVariables = [
      'SOUS_DATABASE_URL',
      'SOUS_KAFKA_BROKERS',
      'SOUS_REPLY_TOPIC',
      'SOUS_REPLY_BATCH_SIZE',
      'SOUS_REPLY_CONCURRENCY',
      'SOUS_REPLY_TRANSACTIONS',
      'SOUS_STATE_CACHE_SIZE',
      'SOUS_STATE_SNAPSHOT_EVERY',
      'SOUS_SHARD_TIMEOUT_MS',
      'SOUS_ROUTING',
      'SOUS_PG_POOL_SIZE',
      'SOUS_METRICS_PORT',
      'SOUS_RETENTION',
      'SOUS_RETENTION_BATCH_SIZE',
    ];
    const stackVariables = [
      'SOUS_PG_PORT',
      'SOUS_KAFKA_PORT',
      'SOUS_CONNECT_PORT',
      'SOUS_STACK_PROFILE',
      'SOUS_JVM_HEAP',
    ];
    const tracingVariables = [
      'OTEL_TRACES_SAMPLER',
      'OTEL_TRACES_SAMPLER_ARG',
      'OTEL_BSP_SCHEDULE_DELAY',
      'OTEL_TRACES_EXPORTER',
    ];
    const value = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.constantFrom('-1', '0', '1e9', 'NaN', '2.5', ' ', 'true', '99999999999999999999', 'x:y', 'postgres://'),
    );
    const cases = fc.oneof(
      fc.record({
        kind: fc.constant('control plane' as const),
        name: fc.constantFrom(...controlPlaneVariables),
        value,
      }),
      fc.record({ kind: fc.constant('stack' as const), name: fc.constantFrom(...stackVariables), value }),
      fc.record({ kind: fc.constant('tracing' as const), name: fc.constantFrom(...tracingVariables), value }),
    );
    fc.assert(
      fc.property(cases, ({ kind, name, value: v }) => {
        const base = { SOUS_DATABASE_URL: 'postgres://sous@127.0.0.1:5432/sous', SOUS_KAFKA_BROKERS: '127.0.0.1:9092' };
        const env = { ...base, [name]: v };
        const load =
          kind === 'control plane'
            ? () => loadEnvironmentConfig(env)
            : kind === 'stack'
              ? () => loadStackConfig(env)
              : () => tracingSettings(env);
        try {
          load();
        } catch (error) {
          const expected = kind === 'stack' ? StackConfigError : ConfigInvalidError;
          assert.ok(error instanceof expected, `unexpected ${String(error)}`);
          assert.ok(error.message.includes(name), `the error names ${name}: ${error.message}`);
        }
      }),
      params,
    );
  });

  const reply = {
    kind: 'step.completed',
    messageId: '01a2289b-fbd1-7140-b7eb-fc7e2ce62740',
    executionId: '01a2289b-fbd1-7140-b7eb-fc7e2ce62741',
    stepExecutionId: '01a2289b-fbd1-7140-b7eb-fc7e2ce62742',
    workerId: 'w-1',
    at: '2026-11-29T18:00:00.000Z',
    output: { n: 1 },
  };

  it('reply records: a reply or ReplyInvalidError naming the field', () => {
    fc.assert(
      fc.property(fc.oneof(mutated(reply), junk), (value) => {
        acceptedOrRefused(() => parseReply(value), [ReplyInvalidError]);
      }),
      params,
    );
  });

  it('command records: handled, or a malformed record or poison (a dead letter) with a coded reason', async () => {
    const capability = defineCapability({
      name: 'gen.echo',
      input: z.object({ n: z.number() }),
      output: z.object({ n: z.number() }),
      handler: ({ n }) => Promise.resolve({ n }),
    });
    const replies: string[] = [];
    const env: RunEnvironment = {
      capabilities: new Map([[capability.name, capability]]),
      payloadStore: undefined,
      region: null,
      send: (_command, body) => {
        replies.push(body.kind);
        return Promise.resolve();
      },
      startedReplyAfterMs: 60_000,
      inFlight: new Set(),
      running: new Map(),
      log: logger.child({ test: 'generated-bad-input' }),
    };
    const command = {
      kind: 'step.command',
      executionId: reply.executionId,
      stepExecutionId: reply.stepExecutionId,
      stepId: 'a',
      capability: 'gen.echo',
      attempt: 1,
      input: { n: 1 },
      replyTopic: 'sous.replies',
      idempotencyKey: `${reply.executionId}/a`,
    };
    const tracer = trace.getTracer('generated-bad-input');
    const record = fc.record({
      value: fc.oneof(
        mutated(command).map((c) => Buffer.from(JSON.stringify(c ?? null))),
        fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
        fc.constant(null),
      ),
      id: fc.oneof(fc.constant(reply.messageId), fc.string({ maxLength: 40 })),
      key: fc.oneof(fc.constant('k'), fc.constant(null)),
    });
    await fc.assert(
      fc.asyncProperty(record, async ({ value, id, key }) => {
        const message = {
          key: key === null ? null : Buffer.from(key),
          value,
          headers: {
            [OUTBOX_HEADERS.id]: Buffer.from(id),
            [OUTBOX_HEADERS.eventType]: Buffer.from('step.command'),
            [OUTBOX_HEADERS.aggregateType]: Buffer.from('execution'),
          },
          offset: '0',
          timestamp: '0',
          attributes: 0,
        } as KafkaMessage;
        let decoded;
        try {
          decoded = decodeOutboxRecord('sous.cmd.gen.echo', 0, message);
        } catch (error) {
          assert.ok(error instanceof MalformedRecordError, `unexpected ${String(error)}`);
          return;
        }
        const span = tracer.startSpan('command');
        try {
          await runCommand(env, decoded, span);
        } catch (error) {
          assert.ok(error instanceof Poison, `unexpected ${error instanceof Error ? error.stack : String(error)}`);
          assert.ok(error.reason.message.length > 0);
          // SOUS_… for a record that is not a command; a step error code (input_invalid) for one whose input is bad.
          assert.match(error.reason.code ?? '', /^(SOUS_[A-Z_]+|[a-z]+(_[a-z]+)*)$/);
        } finally {
          span.end();
        }
      }),
      params,
    );
    // Some generated commands were valid and ran: the property saw both sides.
    assert.ok(replies.length > 0, 'at least one generated command was valid and answered');
  });
});
