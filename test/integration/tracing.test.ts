// One trace per execution, across real processes: an API process (scripts/api.ts), a
// control-plane process and a service's worker process, each with the OpenTelemetry SDK
// switched on by OTEL_EXPORTER_OTLP_ENDPOINT and exporting over OTLP/HTTP to a collector
// this test runs. An execution of three steps (one of them a sub-recipe) started over
// GraphQL with a caller's traceparent must be one trace: the chain request → start →
// decision → command → handler → reply → decision … with every span's parent present.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { NodeChild } from '../../scripts/node-child.js';
import { createApiToken } from '../../src/api/auth.js';
import { databaseUrl, kafkaBrokers } from '../../src/stack/config.js';
import { renderTree, startCollector, type CollectedSpan, type Collector } from '../helpers/otlp-collector.js';
import { stackConfig, testDatabase, testKafka, uniqueName } from '../helpers/stack.js';
import { startTestControlPlane } from '../helpers/control-plane.js';
import { listen } from '../helpers/listen.js';
import { parseRecipeYaml } from '../../src/recipe/parse-yaml.js';
import { sql } from 'kysely';

const ns = uniqueName('trace').replaceAll('-', '');
const capA = `test${ns}.first`;
const capB = `test${ns}.second`;
const capDeferred = `test${ns}.deferred`;
const parentRecipe = `${ns}-parent`;
const childRecipe = `${ns}-child`;
const replyTopic = uniqueName('test.replies');
const logs = mkdtempSync(join(tmpdir(), 'sous-tracing-'));
const db = testDatabase();
const children: NodeChild[] = [];
const cleanup: (() => Promise<void>)[] = [];
let collector: Collector;
let api: string;
let token: string;

const SERVER = 2;
const PRODUCER = 4;
const CONSUMER = 5;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Polls the execution until it has `status`. */
async function waitForStatus(id: string, status: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const view = await gql<{ execution: { status: string } }>('query ($id: ID!) { execution(id: $id) { status } }', {
      id,
    });
    if (view.execution.status === status) return;
    assert.notEqual(view.execution.status, 'FAILED');
    if (Date.now() > deadline) throw new Error(`execution ${id} still ${view.execution.status}`);
    await sleep(100);
  }
}

async function gql<T>(query: string, variables: Record<string, unknown>, headers: Record<string, string> = {}) {
  const response = await fetch(api, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data: T; errors?: unknown[] };
  if (body.errors !== undefined) throw new Error(`GraphQL: ${JSON.stringify(body.errors)}`);
  return body.data;
}

before(async () => {
  collector = await startCollector();
  token = (await createApiToken(db, uniqueName('test-tracing'), 'admin', 'tracing.test')).token;
  const otel = {
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
    // Short batches: the test reads spans soon after the execution ends.
    OTEL_BSP_SCHEDULE_DELAY: '100',
  };
  const brokers = kafkaBrokers(stackConfig).join(',');
  const apiPort = await freePort();
  api = `http://127.0.0.1:${apiPort}/graphql`;
  children.push(
    new NodeChild(
      'control plane',
      'test/fixtures/traced-control-plane.ts',
      {
        ...otel,
        DATABASE_URL: databaseUrl(stackConfig),
        BROKERS: brokers,
        REPLY_TOPIC: replyTopic,
        GROUP: uniqueName('test-control-plane'),
      },
      'control plane ready',
      join(logs, 'control-plane.log'),
    ),
    new NodeChild(
      'worker',
      'test/fixtures/traced-worker.ts',
      {
        ...otel,
        BROKERS: brokers,
        CAPABILITIES: `${capA},${capB}`,
        DEFERRED: capDeferred,
        GROUP: uniqueName('test-worker'),
      },
      'worker ready',
      join(logs, 'worker.log'),
    ),
    // The API process as shipped (it imports `sous` by name, from source).
    new NodeChild(
      'api',
      'scripts/api.ts',
      {
        ...otel,
        NODE_OPTIONS: '--conditions=sous-source',
        SOUS_DATABASE_URL: databaseUrl(stackConfig),
        SOUS_KAFKA_BROKERS: brokers,
        SOUS_REPLY_TOPIC: replyTopic,
        SOUS_API_PORT: String(apiPort),
      },
      'sous api listening at',
      join(logs, 'api.log'),
    ),
  );
  // One at a time: the machine is small, and tsx compiles each on start.
  for (const child of children) await child.start(120_000);
});

after(async () => {
  for (const step of cleanup.reverse()) await step();
  for (const child of children.reverse()) await child.stop();
  await collector.close();
  await db.destroy();
});

/** The spans of a trace once no new one has arrived for a while (every process has exported). */
async function settledTrace(traceId: string, atLeast: number): Promise<CollectedSpan[]> {
  const deadline = Date.now() + 30_000;
  let last = -1;
  let stableSince = Date.now();
  for (;;) {
    const spans = collector.spans.filter((s) => s.traceId === traceId);
    if (spans.length !== last) {
      last = spans.length;
      stableSince = Date.now();
    } else if (spans.length >= atLeast && Date.now() - stableSince > 1500) {
      return spans;
    }
    if (Date.now() > deadline) {
      throw new Error(`trace ${traceId}: ${spans.length} spans after 30 s:\n${renderTree(spans)}`);
    }
    await sleep(100);
  }
}

describe('tracing across processes', () => {
  it('makes one trace of an execution, from the GraphQL request through every command, handler and reply', async () => {
    await gql('mutation ($yaml: String!) { registerRecipe(yaml: $yaml) { version } }', {
      yaml: `name: ${childRecipe}\nsteps:\n  - id: second\n    capability: ${capB}\n    input: { n: input.n }\noutput: outputs.second\n`,
    });
    await gql('mutation ($yaml: String!) { registerRecipe(yaml: $yaml) { version } }', {
      yaml: [
        `name: ${parentRecipe}`,
        'steps:',
        '  - id: first',
        `    capability: ${capA}`,
        '    input: { n: input.n }',
        '  - id: sub',
        `    subRecipe: ${childRecipe}`,
        '    input: { n: outputs.first.n }',
        '  - id: last',
        `    capability: ${capA}`,
        '    input: { n: outputs.sub.n }',
        'output: outputs.last',
        '',
      ].join('\n'),
    });

    // The caller's own span: the request's span must be its child, in its trace.
    const callerTrace = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const started = await gql<{ startRecipe: { execution: { id: string } } }>(
      'mutation ($recipe: String!) { startRecipe(recipe: $recipe, input: { n: 1 }) { execution { id } } }',
      { recipe: parentRecipe },
      { traceparent: `00-${callerTrace}-${callerSpan}-01` },
    );
    const executionId = started.startRecipe.execution.id;
    let status = '';
    const deadline = Date.now() + 60_000;
    while (status !== 'COMPLETED') {
      const view = await gql<{ execution: { status: string; output: unknown } }>(
        'query ($id: ID!) { execution(id: $id) { status output } }',
        { id: executionId },
      );
      status = view.execution.status;
      assert.notEqual(status, 'FAILED');
      if (Date.now() > deadline) throw new Error(`execution still ${status}`);
      await sleep(100);
    }

    const spans = await settledTrace(callerTrace, 25);
    const tree = renderTree(spans);
    if (process.env.SOUS_TRACE_TREE !== undefined) writeFileSync(process.env.SOUS_TRACE_TREE, `${tree}\n`);
    const byId = new Map(spans.map((s) => [s.spanId, s]));

    // Every span of both executions is in the caller's trace…
    const childExecution = spans.find((s) => s.name === `start ${childRecipe}`)?.attributes['sous.execution.id'];
    assert.equal(typeof childExecution, 'string', tree);
    for (const span of collector.spans) {
      const execution = span.attributes['sous.execution.id'];
      if (execution === executionId || execution === childExecution) assert.equal(span.traceId, callerTrace, span.name);
    }
    // …and no span of it is an orphan: each one's parent was exported too, but the
    // request's, whose parent is the caller's span.
    const request = spans.filter((s) => s.kind === SERVER);
    assert.equal(request.length, 1, tree);
    assert.equal(request[0]?.parentSpanId, callerSpan);
    assert.equal(request[0].attributes['http.request.method'], 'POST');
    assert.equal(request[0].attributes['http.response.status_code'], 200);
    assert.equal(request[0].attributes['graphql.operation.type'], 'mutation');
    for (const span of spans) {
      if (span === request[0]) continue;
      assert.ok(span.parentSpanId !== undefined && byId.has(span.parentSpanId), `orphan ${span.name}:\n${tree}`);
    }

    // The chain, from the last command's handler span up to the request.
    const lastHandler = spans.find((s) => s.kind === CONSUMER && s.attributes['sous.step.id'] === 'last');
    assert.ok(lastHandler !== undefined, tree);
    const chain: CollectedSpan[] = [];
    for (let span: CollectedSpan | undefined = lastHandler; span !== undefined;) {
      chain.unshift(span);
      span = span.parentSpanId === undefined ? undefined : byId.get(span.parentSpanId);
    }
    const cmdA = `sous.cmd.${capA}`;
    const cmdB = `sous.cmd.${capB}`;
    assert.deepEqual(
      chain.map((s) => `${s.name} (${s.service})`),
      [
        'POST /graphql (sous-api)',
        `start ${parentRecipe} (sous-api)`,
        'decide start (sous-api)',
        `send ${cmdA} (sous-api)`,
        `process ${cmdA} (test-service)`,
        `send ${replyTopic} (test-service)`,
        `process ${replyTopic} (sous-control-plane)`,
        'decide step.completed (sous-control-plane)',
        `start ${childRecipe} (sous-control-plane)`,
        'decide start (sous-control-plane)',
        `send ${cmdB} (sous-control-plane)`,
        `process ${cmdB} (test-service)`,
        `send ${replyTopic} (test-service)`,
        `process ${replyTopic} (sous-control-plane)`,
        'decide step.completed (sous-control-plane)',
        `send ${replyTopic} (sous-control-plane)`,
        `process ${replyTopic} (sous-control-plane)`,
        'decide child.finished (sous-control-plane)',
        `send ${cmdA} (sous-control-plane)`,
        `process ${cmdA} (test-service)`,
      ],
      tree,
    );
    // The last reply's decision ends the execution, in the same trace.
    // (A slow handler may also have sent step.started: the outcome is the one that decides.)
    const lastReply = spans.find(
      (s) =>
        s.kind === PRODUCER &&
        s.parentSpanId === lastHandler.spanId &&
        s.attributes['sous.reply.kind'] === 'step.completed',
    );
    const finalDecision = spans.find(
      (s) => s.name === 'decide step.completed' && byId.get(s.parentSpanId ?? '')?.parentSpanId === lastReply?.spanId,
    );
    assert.equal(finalDecision?.attributes['sous.execution.id'], executionId, tree);

    // A handler's own span nests in the handler span the SDK started.
    for (const handler of spans.filter((s) => s.kind === CONSUMER && s.service === 'test-service')) {
      assert.ok(
        spans.some((s) => s.name.startsWith('work ') && s.parentSpanId === handler.spanId),
        `no work span under ${handler.name}`,
      );
    }

    // Messaging spans per the semantic conventions.
    const command = chain[3];
    assert.equal(command?.kind, PRODUCER);
    assert.equal(command.attributes['messaging.system'], 'kafka');
    assert.equal(command.attributes['messaging.operation.type'], 'send');
    assert.equal(command.attributes['messaging.destination.name'], cmdA);
    assert.equal(command.attributes['messaging.kafka.message.key'], `${executionId}/first`);
    const handler = chain[4];
    assert.equal(handler?.kind, CONSUMER);
    assert.equal(handler.attributes['messaging.system'], 'kafka');
    assert.equal(handler.attributes['messaging.operation.type'], 'process');
    assert.equal(handler.attributes['messaging.destination.name'], cmdA);
    assert.equal(handler.attributes['messaging.message.id'], command.attributes['messaging.message.id']);
    assert.equal(typeof handler.attributes['messaging.consumer.group.name'], 'string');
    assert.equal(typeof handler.attributes['messaging.destination.partition.id'], 'string');
    assert.equal(handler.attributes['sous.execution.id'], executionId);
  });

  it('keeps timer and operator decisions in the execution\u2019s trace, linked to the operator\u2019s request', async () => {
    const timed = `${ns}-timed`;
    await gql('mutation ($yaml: String!) { registerRecipe(yaml: $yaml) { version } }', {
      yaml: [
        `name: ${timed}`,
        'steps:',
        '  - id: first',
        `    capability: ${capA}`,
        `    input: '{ "n": 1 }'`,
        '  - id: nap',
        '    sleep: 300ms',
        '  - id: wait',
        '    waitForSignal: go',
        '  - id: last',
        `    capability: ${capA}`,
        `    input: '{ "n": 2 }'`,
        '',
      ].join('\n'),
    });
    // No traceparent: the request's span starts the trace.
    const started = await gql<{ startRecipe: { execution: { id: string } } }>(
      'mutation ($recipe: String!) { startRecipe(recipe: $recipe, input: {}) { execution { id } } }',
      { recipe: timed },
    );
    const id = started.startRecipe.execution.id;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const view = await gql<{ execution: { steps: { key: string; status: string }[] } }>(
        'query ($id: ID!) { execution(id: $id) { steps { key status } } }',
        { id },
      );
      // The nap's timer has fired once the wait step exists (steps run in order).
      if (view.execution.steps.some((s) => s.key === 'wait')) break;
      if (Date.now() > deadline) throw new Error(`step wait not reached: ${JSON.stringify(view.execution.steps)}`);
      await sleep(100);
    }
    await gql('mutation ($id: ID!) { signal(executionId: $id, name: "go", payload: true) { id } }', { id });
    await waitForStatus(id, 'COMPLETED');

    const start = collector.spans.find((s) => s.name === `start ${timed}` && s.attributes['sous.execution.id'] === id);
    assert.ok(start !== undefined, 'no start span');
    const spans = await settledTrace(start.traceId, 15);
    const tree = renderTree(spans);
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    for (const span of collector.spans) {
      if (span.attributes['sous.execution.id'] === id) assert.equal(span.traceId, start.traceId, span.name);
    }
    const request = spans.filter((s) => s.kind === SERVER);
    assert.equal(request.length, 1, tree);
    assert.equal(request[0]?.parentSpanId, undefined);
    for (const span of spans) {
      if (span === request[0]) continue;
      assert.ok(span.parentSpanId !== undefined && byId.has(span.parentSpanId), `orphan ${span.name}:\n${tree}`);
    }
    // The timer fires a decision under the execution's start (no message carries one).
    const timer = spans.find((s) => s.name === 'decide timer');
    assert.equal(timer?.parentSpanId, start.spanId, tree);
    // The operator's request is a trace of its own; its decision is in the execution's, linked to it.
    const signal = spans.find((s) => s.name === 'decide signal');
    assert.equal(signal?.parentSpanId, start.spanId, tree);
    const signalRequest = collector.spans.find(
      (s) => s.kind === SERVER && s.spanId === signal.links[0]?.spanId && s.traceId === signal.links[0].traceId,
    );
    assert.ok(signalRequest !== undefined, 'the signal decision links to the request');
    assert.notEqual(signalRequest.traceId, start.traceId);
    // What the signal's decision sends is in the execution's trace too.
    assert.ok(
      spans.some((s) => s.kind === PRODUCER && s.parentSpanId === signal.spanId),
      `no command under the signal's decision:\n${tree}`,
    );
  });

  it('keeps a deferred step\u2019s completion, sent later through its token, under the handler span', async () => {
    const name = `${ns}-deferred`;
    await gql('mutation ($yaml: String!) { registerRecipe(yaml: $yaml) { version } }', {
      yaml: `name: ${name}\nsteps:\n  - id: long\n    capability: ${capDeferred}\n    input: '{ "n": 1 }'\n`,
    });
    const started = await gql<{ startRecipe: { execution: { id: string } } }>(
      'mutation ($recipe: String!) { startRecipe(recipe: $recipe, input: {}) { execution { id } } }',
      { recipe: name },
    );
    const id = started.startRecipe.execution.id;
    await waitForStatus(id, 'COMPLETED');
    const start = collector.spans.find((s) => s.name === `start ${name}` && s.attributes['sous.execution.id'] === id);
    assert.ok(start !== undefined, 'no start span');
    const spans = await settledTrace(start.traceId, 9);
    const tree = renderTree(spans);
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    for (const span of spans) {
      if (span.kind === SERVER) continue;
      assert.ok(span.parentSpanId !== undefined && byId.has(span.parentSpanId), `orphan ${span.name}:\n${tree}`);
    }
    const handler = spans.find((s) => s.kind === CONSUMER && s.attributes['sous.step.id'] === 'long');
    assert.ok(handler !== undefined, tree);
    // The completion client's reply: a child of the handler span, whose decision completes the execution.
    const completion = spans.find(
      (s) =>
        s.kind === PRODUCER &&
        s.parentSpanId === handler.spanId &&
        s.attributes['sous.reply.kind'] === 'step.completed',
    );
    assert.ok(completion !== undefined, `no completion reply under the handler:\n${tree}`);
    const processed = spans.find((s) => s.kind === CONSUMER && s.parentSpanId === completion.spanId);
    const decision = spans.find((s) => s.name === 'decide step.completed' && s.parentSpanId === processed?.spanId);
    assert.equal(decision?.attributes['sous.execution.id'], id, tree);
  });

  it('without an SDK, passes a caller\u2019s traceparent through to the commands unchanged', async () => {
    // This test process registers no SDK: its control plane's spans are the API's no-ops.
    // Static routing: the test reads the command itself, as a worker that does not announce itself would.
    const controlPlane = await startTestControlPlane({
      consume: false,
      sampleGauges: false,
      processMetrics: false,
      routing: 'static',
    });
    cleanup.push(() => controlPlane.stop());
    const quiet = `test${ns}.quiet`;
    const listener = await listen(testKafka(), [`sous.cmd.${quiet}`], cleanup);
    const plan = parseRecipeYaml(`name: ${ns}-nosdk\nsteps:\n  - id: only\n    capability: ${quiet}\n`);
    await controlPlane.registerRecipe(plan);
    const traceparent = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
    const { executionId } = await controlPlane.startExecution({ recipe: plan.name, traceparent });
    await listener.until(() => listener.seen.length > 0, 'the command');
    assert.equal(listener.seen[0]?.message.headers?.traceparent?.toString(), traceparent);
    const stored = await sql<{ traceparent: string | null }>`
      SELECT traceparent FROM sous.execution WHERE id = ${executionId}`.execute(db);
    assert.equal(stored.rows[0]?.traceparent, traceparent);
  });
});
