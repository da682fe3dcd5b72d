// The GraphQL API end to end on the real stack: tokens and roles, every query, mutation
// and subscription, the audit log, limits, bad input, and the dead-letter round trip
// (poison command → DLT → ingest → fix the worker → reprocess → the execution completes).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, type Client } from 'graphql-ws';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import WebSocket from 'ws';
import { z } from 'zod';
import { buildApi } from '../../src/api/app.js';
import { createApiToken, type Role } from '../../src/api/auth.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import type { Database } from '../../src/db/schema.js';
import { createWorker, defineCapability, type Worker } from '../../src/worker/index.js';
import { databaseUrl, kafkaBrokers } from '../../src/stack/config.js';
import { serveTestApi, startTestApi } from '../helpers/api.js';
import { stackConfig, testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, type TestWorker } from '../helpers/test-worker.js';

const kafka = testKafka();
const ns = uniqueName('api').replaceAll('-', '');
const cap = (name: string) => `test${ns}.${name}`;
const recipeName = (name: string) => `${ns}.${name}`;

let cp: ControlPlane & { replyTopic: string };
let url: string;
let secondUrl: string;
let worker: TestWorker;
const tokens = {} as Record<Role, string>;
const cleanup: (() => Promise<unknown>)[] = [];
let shouldFail = true;

interface GraphQLResponse {
  status: number;
  data: Record<string, unknown> | null;
  errors: { message: string; path?: string[]; extensions: { code: string; issues?: { path: string }[] } }[];
}

async function gql(
  token: string | undefined,
  query: string,
  variables: Record<string, unknown> = {},
  at = url,
): Promise<GraphQLResponse> {
  const response = await fetch(`${at}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as Partial<Omit<GraphQLResponse, 'status'>>;
  return { status: response.status, data: body.data ?? null, errors: body.errors ?? [] };
}

/** Runs a query that must succeed, returning its data. */
async function ok<T = Record<string, unknown>>(
  token: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  const result = await gql(token, query, variables);
  assert.equal(result.errors.length, 0, JSON.stringify(result.errors));
  return result.data as T;
}

interface ExecutionData {
  id: string;
  status: string;
  output: unknown;
  steps: { key: string; status: string; attempts: { attempt: number; status: string }[] }[];
}

const EXECUTION = `id status output steps { key status attempts { attempt status } }`;

async function execution(id: string): Promise<ExecutionData> {
  const data = await ok<{ execution: ExecutionData }>(
    tokens.viewer,
    `query($id: ID!) { execution(id: $id) { ${EXECUTION} } }`,
    { id },
  );
  return data.execution;
}

async function waitFor(id: string, done: (e: ExecutionData) => boolean, timeoutMs = 60_000): Promise<ExecutionData> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = await execution(id);
    if (done(e)) return e;
    if (Date.now() > deadline) throw new Error(`execution ${id}: still ${JSON.stringify(e)}`);
    await sleep(100);
  }
}

const terminal = (e: ExecutionData) => ['COMPLETED', 'FAILED', 'CANCELLED'].includes(e.status);

async function register(yaml: string): Promise<number> {
  const data = await ok<{ registerRecipe: { version: number } }>(
    tokens.admin,
    `mutation($yaml: String) { registerRecipe(yaml: $yaml) { name version created } }`,
    { yaml },
  );
  return data.registerRecipe.version;
}

async function start(recipe: string, input: unknown = {}, idempotencyKey?: string): Promise<string> {
  const data = await ok<{ startRecipe: { execution: { id: string } } }>(
    tokens.operator,
    `mutation($recipe: String!, $input: JSON, $key: String) {
      startRecipe(recipe: $recipe, input: $input, idempotencyKey: $key) { created execution { id } } }`,
    { recipe, input, key: idempotencyKey },
  );
  return data.startRecipe.execution.id;
}

const countExecutions = async (recipe: string) =>
  Number(
    (await sql<{ n: string }>`SELECT count(*) AS n FROM sous.execution WHERE recipe_name = ${recipe}`.execute(cp.db))
      .rows[0]?.n,
  );

before(async () => {
  ({ controlPlane: cp, url } = await startTestApi(ns, cleanup));
  // A second API process: subscriptions must reach every process, not only the one that wrote.
  secondUrl = await serveTestApi(cp, cleanup, { maxDepth: 5 });
  for (const role of ['viewer', 'operator', 'admin'] as const) {
    tokens[role] = (await createApiToken(cp.db, uniqueName(`test-${role}`), role, 'api.test')).token;
  }
  worker = await startTestWorker(kafka, {
    [cap('echo')]: async (c) => ({ output: c.input ?? null }),
    // A hung worker when the input says hold: the test replies by hand.
    [cap('gate')]: async (c) =>
      (c.input as { hold?: boolean } | null)?.hold === true ? 'no-reply' : { output: 'gate-open' },
    [cap('flaky')]: async () =>
      shouldFail ? { error: { code: 'boom', message: 'boom', retryable: false } } : { output: 'fixed' },
  });
  cleanup.push(() => worker.stop());
  await register(`
name: ${recipeName('pair')}
steps:
  - id: a
    capability: ${cap('gate')}
    input: { hold: input.hold }
  - id: b
    capability: ${cap('echo')}
    input: { got: outputs.a }
output: outputs.b
`);
});

after(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
});

describe('GraphQL API', () => {
  it('refuses requests without a valid token, and viewers cannot mutate; nothing changes', async () => {
    const none = await gql(undefined, '{ me { name role } }');
    assert.equal(none.status, 401);
    assert.equal(none.errors[0]?.extensions.code, 'SOUS_UNAUTHENTICATED');
    const bad = await gql('sous_not-a-real-token', '{ me { name role } }');
    assert.equal(bad.status, 401);
    assert.equal(bad.errors[0]?.extensions.code, 'SOUS_UNAUTHENTICATED');
    assert.equal((await ok<{ me: { role: string } }>(tokens.viewer, '{ me { role } }')).me.role, 'VIEWER');

    const before = await countExecutions(recipeName('pair'));
    const denied = await gql(tokens.viewer, `mutation { startRecipe(recipe: "${recipeName('pair')}") { created } }`);
    assert.equal(denied.errors[0]?.extensions.code, 'SOUS_FORBIDDEN');
    assert.equal(await countExecutions(recipeName('pair')), before, 'nothing started');
    const operatorRegisters = await gql(tokens.operator, `mutation { registerRecipe(yaml: "name: x") { version } }`);
    assert.equal(operatorRegisters.errors[0]?.extensions.code, 'SOUS_FORBIDDEN', 'recipes are for admins');
    const audit = await sql<{ outcome: string; error_code: string }>`
      SELECT outcome, error_code FROM sous.audit_log WHERE operation = 'startRecipe' AND role = 'viewer'
      ORDER BY id DESC LIMIT 1`.execute(cp.db);
    assert.deepEqual(audit.rows[0], { outcome: 'denied', error_code: 'SOUS_FORBIDDEN' });
  });

  it('manages tokens: an admin creates one (stored hashed) and revokes it', async () => {
    const name = uniqueName('ops');
    const created = await ok<{ createApiToken: { token: string; role: string } }>(
      tokens.admin,
      `mutation($name: String!) { createApiToken(name: $name, role: OPERATOR) { name role token } }`,
      { name },
    );
    const token = created.createApiToken.token;
    assert.equal(created.createApiToken.role, 'OPERATOR');
    const stored = await sql<{
      token_hash: string;
    }>`SELECT token_hash FROM sous.api_token WHERE name = ${name}`.execute(cp.db);
    assert.notEqual(stored.rows[0]?.token_hash, token, 'only a hash is stored');
    assert.equal(stored.rows[0]?.token_hash.length, 64);
    assert.equal((await ok<{ me: { role: string } }>(token, '{ me { role } }')).me.role, 'OPERATOR');
    const again = await gql(tokens.admin, `mutation { createApiToken(name: "${name}", role: VIEWER) { token } }`);
    assert.equal(again.errors[0]?.extensions.code, 'SOUS_TOKEN_EXISTS');
    await ok(tokens.admin, `mutation { revokeApiToken(name: "${name}") }`);
    assert.equal((await gql(token, '{ me { role } }')).status, 401);
    const audited = await sql<{ arguments: Record<string, unknown> }>`
      SELECT arguments FROM sous.audit_log WHERE operation = 'createApiToken' AND arguments->>'name' = ${name}
      ORDER BY id LIMIT 1`.execute(cp.db);
    assert.deepEqual(audited.rows[0]?.arguments, { name, role: 'OPERATOR' });
  });

  it('registers recipes from YAML or JSON, listing every validation error with its path', async () => {
    const name = recipeName('reg');
    const bad = await gql(tokens.admin, `mutation($yaml: String) { registerRecipe(yaml: $yaml) { version } }`, {
      yaml: `name: ${name}\nsteps:\n  - id: a\n    capability: 42\n  - id: a\n    sleep: forever\n`,
    });
    assert.equal(bad.errors[0]?.extensions.code, 'SOUS_RECIPE_INVALID');
    const paths = (bad.errors[0].extensions.issues ?? []).map((i) => i.path);
    assert.ok(paths.length >= 2, JSON.stringify(bad.errors));
    assert.ok(
      paths.some((p) => p.startsWith('steps[0]')),
      JSON.stringify(paths),
    );
    const none = await ok<{ recipe: unknown }>(tokens.viewer, `query($n: String!) { recipe(name: $n) { name } }`, {
      n: name,
    });
    assert.equal(none.recipe, null, 'nothing registered');

    const both = await gql(tokens.admin, `mutation { registerRecipe(yaml: "x", json: {}) { version } }`);
    assert.equal(both.errors[0]?.extensions.code, 'SOUS_INVALID_ARGUMENT');

    const json = { name, steps: [{ id: 'only', capability: cap('echo') }] };
    const first = await ok<{ registerRecipe: { version: number; created: boolean } }>(
      tokens.admin,
      `mutation($json: JSON) { registerRecipe(json: $json) { version created } }`,
      { json },
    );
    assert.deepEqual(first.registerRecipe, { version: 1, created: true });
    const same = await ok<{ registerRecipe: { version: number; created: boolean } }>(
      tokens.admin,
      `mutation($json: JSON) { registerRecipe(json: $json) { version created } }`,
      { json },
    );
    assert.deepEqual(same.registerRecipe, { version: 1, created: false });
    const listed = await ok<{
      recipe: { latestVersion: number; versions: { version: number; plan: { steps: unknown[] } }[] };
    }>(tokens.viewer, `query($n: String!) { recipe(name: $n) { latestVersion versions { version checksum plan } } }`, {
      n: name,
    });
    assert.equal(listed.recipe.latestVersion, 1);
    assert.equal(listed.recipe.versions[0]?.plan.steps.length, 1);
    const all = await ok<{ recipes: { name: string }[] }>(tokens.viewer, '{ recipes { name } }');
    assert.ok(all.recipes.some((r) => r.name === name));
  });

  it('starts once per idempotency key and shows steps, attempts, events and bucket progress', async () => {
    const name = recipeName('each');
    await register(`
name: ${name}
steps:
  - id: each
    forEach: input.items
    concurrency: 2
    steps:
      - id: item
        capability: ${cap('echo')}
        input: item
`);
    const key = uniqueName('key');
    const id = await start(name, { items: [1, 2, 3] }, key);
    assert.equal(await start(name, { items: [9] }, key), id, 'the same key gives the same execution');
    await waitFor(id, terminal);
    const data = await ok<{
      execution: {
        status: string;
        output: unknown;
        steps: { key: string; attempts: { capability: string; input: unknown }[] }[];
        events: { seq: number; type: string }[];
        buckets: { stepKey: string; items: number; done: number; notStarted: number }[];
      };
    }>(
      tokens.viewer,
      `query($id: ID!) { execution(id: $id) { status output steps { key attempts { capability input } }
         events { seq type at } buckets { stepKey items done notStarted ready inFlight } } }`,
      { id },
    );
    const e = data.execution;
    assert.equal(e.status, 'COMPLETED');
    assert.deepEqual(e.output, { each: [1, 2, 3] });
    assert.deepEqual(e.steps.map((s) => s.key).sort(), ['each', 'item[0]', 'item[1]', 'item[2]']);
    assert.equal(e.steps.find((s) => s.key === 'item[1]')?.attempts[0]?.capability, cap('echo'));
    // Each attempt's input as the step received it (read from its StepScheduled event).
    assert.deepEqual(
      ['item[0]', 'item[1]', 'item[2]'].map((k) => e.steps.find((s) => s.key === k)?.attempts[0]?.input),
      [1, 2, 3],
    );
    assert.equal(e.events[0]?.type, 'ExecutionStarted');
    assert.deepEqual(
      e.events.map((ev) => ev.seq),
      e.events.map((_, i) => i + 1),
    );
    assert.deepEqual(e.buckets, [
      { stepKey: 'each', items: 3, done: 3, notStarted: 0, ready: { item: [] }, inFlight: { item: 0 } },
    ]);
  });

  it('lists executions with filters and cursor pagination', async () => {
    const name = recipeName('list');
    await register(`name: ${name}\nsteps:\n  - id: a\n    capability: ${cap('echo')}\n`);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(await start(name, { i }));
      await sleep(5); // Distinct creation times: the order asserted below is by time.
    }
    for (const id of ids) await waitFor(id, terminal);
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 5; page++) {
      const data: {
        executions: { edges: { node: { id: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string } };
      } = await ok(
        tokens.viewer,
        `query($r: String, $after: String) { executions(filter: { recipe: $r, status: [COMPLETED] }, first: 2, after: $after) {
           edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }`,
        { r: name, after },
      );
      seen.push(...data.executions.edges.map((e) => e.node.id));
      if (!data.executions.pageInfo.hasNextPage) break;
      after = data.executions.pageInfo.endCursor;
    }
    assert.deepEqual([...seen].sort(), [...ids].sort(), 'every execution once, across pages');
    assert.deepEqual(seen, [...ids].reverse(), 'newest first');
    const none = await ok<{ executions: { edges: unknown[] } }>(
      tokens.viewer,
      `query($r: String) { executions(filter: { recipe: $r, status: [FAILED] }) { edges { cursor } } }`,
      { r: name },
    );
    assert.equal(none.executions.edges.length, 0);
    const future = await ok<{ executions: { edges: unknown[] } }>(
      tokens.viewer,
      `query($r: String) { executions(filter: { recipe: $r, createdAfter: "2999-01-01T00:00:00Z" }) { edges { cursor } } }`,
      { r: name },
    );
    assert.equal(future.executions.edges.length, 0);
    const badCursor = await gql(tokens.viewer, `{ executions(after: "garbage") { edges { cursor } } }`);
    assert.equal(badCursor.errors[0]?.extensions.code, 'SOUS_INVALID_ARGUMENT');
  });

  it('costs a fixed number of queries per request, however long the list (loaders)', async () => {
    let queries = 0;
    const counting = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: databaseUrl(stackConfig), max: 2 }) }),
      log: (event) => {
        if (event.level === 'query') queries++;
      },
    });
    const counted = await buildApi({ controlPlane: { ...cp, db: counting }, databaseUrl: databaseUrl(stackConfig) });
    await counted.listen({ port: 0, host: '127.0.0.1' });
    try {
      const at = `http://127.0.0.1:${(counted.server.address() as AddressInfo).port}`;
      const name = recipeName('pair');
      for (let i = 0; i < 3; i++) await waitFor(await start(name), terminal);
      const cost = async (first: number) => {
        queries = 0;
        const result = await gql(
          tokens.viewer,
          `query($r: String, $n: Int) { executions(filter: { recipe: $r }, first: $n) { edges { node {
             id steps { key attempts { id } } events { seq } buckets { stepKey } } } } }`,
          { r: name, n: first },
          at,
        );
        assert.equal(result.errors.length, 0, JSON.stringify(result.errors));
        const edges = (result.data?.executions as { edges: unknown[] }).edges;
        return { queries, edges: edges.length };
      };
      const one = await cost(1);
      const many = await cost(3);
      assert.equal(one.edges, 1);
      assert.equal(many.edges, 3);
      assert.equal(many.queries, one.queries, 'three executions cost the queries of one');
      assert.ok(one.queries <= 7, `${one.queries} queries: auth, the page, steps, attempts, events, buckets`);
    } finally {
      await counted.close();
      await counting.destroy();
    }
  });

  it('gives clear codes for unknown ids and wrong types, changing nothing', async () => {
    const unknown = await ok<{ execution: unknown }>(tokens.viewer, `{ execution(id: "${randomUUID()}") { id } }`);
    assert.equal(unknown.execution, null);
    const notUuid = await ok<{ execution: unknown }>(tokens.viewer, `{ execution(id: "nope") { id } }`);
    assert.equal(notUuid.execution, null);
    const cancel = await gql(tokens.operator, `mutation { cancelExecution(id: "${randomUUID()}") { id } }`);
    assert.equal(cancel.errors[0]?.extensions.code, 'SOUS_EXECUTION_NOT_FOUND');
    const noRecipe = await gql(tokens.operator, `mutation { startRecipe(recipe: "${ns}.missing") { created } }`);
    assert.equal(noRecipe.errors[0]?.extensions.code, 'SOUS_RECIPE_NOT_FOUND');
    const wrongType = await gql(tokens.operator, `mutation { startRecipe(recipe: 42, version: "x") { created } }`);
    assert.equal(wrongType.status, 400);
    assert.equal(wrongType.errors[0]?.extensions.code, 'SOUS_GRAPHQL_INVALID');
    const badRetry = await gql(
      tokens.operator,
      `mutation { retryStep(executionId: "not-a-uuid", stepKey: "a") { id } }`,
    );
    assert.equal(badRetry.errors[0]?.extensions.code, 'SOUS_INVALID_ARGUMENT');
  });

  it('limits query depth and cost', async () => {
    const deep = `{ executions { edges { node { steps { attempts { id } } } } } }`;
    const ordinary = await gql(tokens.viewer, deep);
    assert.equal(ordinary.errors.length, 0, JSON.stringify(ordinary.errors));
    const tooDeep = await gql(tokens.viewer, deep, {}, secondUrl);
    assert.equal(tooDeep.status, 400, 'the second process allows depth 5 only');
    assert.equal(tooDeep.errors[0]?.extensions.code, 'SOUS_GRAPHQL_INVALID');
    const costly = await gql(
      tokens.viewer,
      `{ executions(first: 500) { edges { node { steps { attempts { id capability input } } events(first: 1000) { seq data } } } } }`,
    );
    assert.equal(costly.status, 400);
    assert.equal(costly.errors[0]?.extensions.code, 'SOUS_QUERY_TOO_COMPLEX');
  });

  /** Replies for the hung worker: completes the attempt of `stepId` in flight. */
  const completeByHand = async (id: string, stepId: string, output: unknown) => {
    const command = worker.received.filter((c) => c.executionId === id && c.stepId === stepId).at(-1);
    assert.ok(command, `a command for ${stepId} arrived`);
    await worker.reply(
      { kind: 'step.completed', executionId: id, stepExecutionId: command.stepExecutionId, output },
      command.replyTopic,
    );
  };

  it('pause: nothing new is dispatched; resume: the execution completes', async () => {
    const id = await start(recipeName('pair'), { hold: true });
    await waitFor(id, (e) => e.steps.some((s) => s.key === 'a' && s.status === 'running'));
    const paused = await ok<{ pauseExecution: { status: string } }>(
      tokens.operator,
      `mutation($id: ID!) { pauseExecution(id: $id) { status } }`,
      { id },
    );
    assert.equal(paused.pauseExecution.status, 'PAUSED');
    await completeByHand(id, 'a', 'gate-open');
    await waitFor(id, (e) => e.steps.some((s) => s.key === 'a' && s.status === 'completed'));
    await sleep(1500);
    const held = await execution(id);
    assert.equal(held.status, 'PAUSED');
    assert.equal(
      held.steps.some((s) => s.key === 'b'),
      false,
      'b is not dispatched while paused',
    );
    assert.equal(worker.received.filter((c) => c.executionId === id && c.stepId === 'b').length, 0);
    await ok(tokens.operator, `mutation($id: ID!) { resumeExecution(id: $id) { status } }`, { id });
    const done = await waitFor(id, terminal);
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual(done.output, { got: 'gate-open' });
  });

  it('skipStep unblocks a hung step with an operator output; retryStep sends a new attempt', async () => {
    const id = await start(recipeName('pair'), { hold: true });
    await waitFor(id, (e) => e.steps.some((s) => s.key === 'a' && s.status === 'running'));
    const retried = await ok<{
      retryStep: { steps: { key: string; attempts: { attempt: number; status: string }[] }[] };
    }>(tokens.operator, `mutation($id: ID!) { retryStep(executionId: $id, stepKey: "a") { ${EXECUTION} } }`, { id });
    const attempts = retried.retryStep.steps.find((s) => s.key === 'a')?.attempts ?? [];
    assert.deepEqual(
      attempts.map((a) => [a.attempt, a.status]),
      [
        [1, 'failed'],
        [2, 'scheduled'],
      ],
      'the hung attempt is abandoned, a second one sent',
    );
    const refused = await gql(
      tokens.operator,
      `mutation($id: ID!) { skipStep(executionId: $id, stepKey: "b") { id } }`,
      {
        id,
      },
    );
    assert.equal(refused.errors[0]?.extensions.code, 'SOUS_ACTION_REFUSED');
    await ok(
      tokens.operator,
      `mutation($id: ID!) { skipStep(executionId: $id, stepKey: "a", output: "by hand") { id } }`,
      {
        id,
      },
    );
    const done = await waitFor(id, terminal);
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual(done.output, { got: 'by hand' });
  });

  it('rerunFromStep runs a failed execution again; signal wakes a waiting step', async () => {
    const name = recipeName('rerun');
    await register(`
name: ${name}
steps:
  - id: first
    capability: ${cap('echo')}
  - id: wait
    waitForSignal: go
  - id: risky
    capability: ${cap('flaky')}
    retry: { maxAttempts: 1 }
output: '{ "risky": outputs.risky, "go": outputs.wait }'
`);
    shouldFail = true;
    const id = await start(name);
    await waitFor(id, (e) => e.steps.some((s) => s.key === 'wait'));
    await ok(tokens.operator, `mutation($id: ID!) { signal(executionId: $id, name: "go", payload: {n: 1}) { id } }`, {
      id,
    });
    assert.equal((await waitFor(id, terminal)).status, 'FAILED');
    shouldFail = false;
    const rerun = await ok<{ rerunFromStep: { status: string } }>(
      tokens.operator,
      `mutation($id: ID!) { rerunFromStep(executionId: $id, stepId: "risky") { status } }`,
      { id },
    );
    assert.equal(rerun.rerunFromStep.status, 'RUNNING');
    const done = await waitFor(id, terminal);
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual(done.output, { risky: 'fixed', go: { n: 1 } });
    const cancelDone = await gql(tokens.operator, `mutation($id: ID!) { cancelExecution(id: $id) { id } }`, { id });
    assert.equal(cancelDone.errors[0]?.extensions.code, 'SOUS_EXECUTION_FINISHED');
    const audit = await sql<{ operation: string; outcome: string; actor: string }>`
      SELECT operation, outcome, actor FROM sous.audit_log WHERE arguments->>'executionId' = ${id} ORDER BY id`.execute(
      cp.db,
    );
    assert.deepEqual(
      audit.rows.map((r) => [r.operation, r.outcome]),
      [
        ['signal', 'ok'],
        ['rerunFromStep', 'ok'],
      ],
    );
  });

  it('delivers subscriptions from committed state to several API processes', async () => {
    const clients: Client[] = [];
    const subscribe = (at: string, query: string, variables: Record<string, unknown>) => {
      const client = createClient({
        url: `${at.replace('http', 'ws')}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${tokens.viewer}` },
      });
      clients.push(client);
      const seen: Record<string, unknown>[] = [];
      const ready = new Promise<void>((resolve) => {
        client.on('connected', () => resolve());
      });
      client.subscribe(
        { query, variables },
        {
          next: (value) => void seen.push(value.data as Record<string, unknown>),
          error: (error) => void seen.push({ error: String(error) }),
          complete: () => undefined,
        },
      );
      return { seen, ready };
    };
    try {
      const name = recipeName('pair');
      const changes = subscribe(
        secondUrl,
        `subscription($r: String) { executionsChanged(filter: { recipe: $r, status: [COMPLETED] }) { id status execution { status output } } }`,
        { r: name },
      );
      await changes.ready;
      await sleep(300);
      const id = await start(name);
      const updates = subscribe(url, `subscription($id: ID!) { executionUpdated(id: $id) { id status } }`, { id });
      await updates.ready;
      const deadline = Date.now() + 60_000;
      const completedOnSecond = () =>
        changes.seen.some((d) => (d.executionsChanged as { id?: string; status?: string } | undefined)?.id === id);
      while (!(
        completedOnSecond() &&
        updates.seen.some((d) => (d.executionUpdated as { status?: string }).status === 'COMPLETED')
      )) {
        if (Date.now() > deadline) throw new Error(`subscriptions saw ${JSON.stringify([changes.seen, updates.seen])}`);
        await sleep(100);
      }
      const change = changes.seen.find((d) => (d.executionsChanged as { id: string }).id === id)?.executionsChanged as {
        status: string;
        execution: { status: string; output: unknown };
      };
      assert.equal(change.status, 'COMPLETED', 'the filter let only completed changes through');
      assert.deepEqual(change.execution, { status: 'COMPLETED', output: { got: 'gate-open' } });
      const refused = createClient({
        url: `${url.replace('http', 'ws')}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: 'Bearer nope' },
        retryAttempts: 0,
      });
      clients.push(refused);
      const outcome = await new Promise<string>((resolve) => {
        refused.subscribe(
          { query: `subscription { executionsChanged { id } }` },
          { next: () => resolve('data'), error: () => resolve('refused'), complete: () => resolve('complete') },
        );
      });
      assert.equal(outcome, 'refused', 'a bad token gets no subscription');
    } finally {
      for (const c of clients) await c.dispose();
    }
  });

  it('dead letters: poison command → DLT → fixed worker → reprocess → the execution completes', async () => {
    const capability = cap('ship');
    const name = recipeName('ship');
    await register(`
name: ${name}
steps:
  - id: ship
    capability: ${capability}
    input: { address: input.address }
output: outputs.ship
`);
    const groupId = uniqueName('ship-workers');
    const strict = defineCapability({
      name: capability,
      input: z.object({ address: z.string() }),
      output: z.object({ shipped: z.string() }),
      handler: async (input) => ({ shipped: input.address }),
    });
    let shipWorker: Worker = createWorker({
      brokers: kafkaBrokers(stackConfig),
      capabilities: [strict],
      groupId,
      handleSignals: false,
    });
    await shipWorker.start();
    try {
      const id = await start(name, { address: 221 });
      await waitFor(id, (e) => e.steps.some((s) => s.key === 'ship' && s.status === 'dead_lettered'));
      assert.equal((await execution(id)).status, 'RUNNING', 'the execution waits for an operator');
      let letters: {
        id: string;
        errorCode: string;
        originalTopic: string;
        stepKey: string;
        payload: { input: unknown };
      }[] = [];
      const deadline = Date.now() + 60_000;
      while (letters.length === 0) {
        if (Date.now() > deadline) throw new Error('the dead letter was not ingested');
        await sleep(200);
        letters = (
          await ok<{ deadLetters: typeof letters }>(
            tokens.viewer,
            `query($e: ID) { deadLetters(filter: { executionId: $e }) { id errorCode originalTopic stepKey payload } }`,
            { e: id },
          )
        ).deadLetters;
      }
      const letter = letters[0];
      assert.ok(letter);
      assert.equal(letter.errorCode, 'input_invalid');
      assert.equal(letter.originalTopic, `sous.cmd.${capability}`);
      assert.equal(letter.stepKey, 'ship');
      const rows = await sql<{ n: string }>`
        SELECT count(*) AS n FROM sous.dead_letter WHERE execution_id = ${id}`.execute(cp.db);
      assert.equal(rows.rows[0]?.n, '1', 'stored once');

      // Fix the worker: it now accepts a numeric address (same group: it takes over).
      await shipWorker.stop();
      shipWorker = createWorker({
        brokers: kafkaBrokers(stackConfig),
        capabilities: [
          defineCapability({
            name: capability,
            input: z.object({ address: z.union([z.string(), z.number()]) }),
            output: z.object({ shipped: z.string() }),
            handler: async (input) => ({ shipped: String(input.address) }),
          }),
        ],
        groupId,
        handleSignals: false,
      });
      await shipWorker.start();
      const viewerTries = await gql(
        tokens.viewer,
        `mutation($ids: [ID!]) { reprocessDeadLetters(ids: $ids) { messageId } }`,
        {
          ids: [letter.id],
        },
      );
      assert.equal(viewerTries.errors[0]?.extensions.code, 'SOUS_FORBIDDEN');
      const reprocessed = await ok<{ reprocessDeadLetters: { deadLetterId: string; stepRequeued: boolean }[] }>(
        tokens.operator,
        `mutation($ids: [ID!]) { reprocessDeadLetters(ids: $ids) { deadLetterId messageId stepRequeued } }`,
        { ids: [letter.id] },
      );
      assert.equal(reprocessed.reprocessDeadLetters.length, 1);
      assert.equal(reprocessed.reprocessDeadLetters[0]?.deadLetterId, letter.id);
      assert.equal(reprocessed.reprocessDeadLetters[0].stepRequeued, true, 'the parked step is in flight again');
      const twice = await gql(
        tokens.operator,
        `mutation($ids: [ID!]) { reprocessDeadLetters(ids: $ids) { messageId } }`,
        {
          ids: [letter.id],
        },
      );
      assert.equal(twice.errors[0]?.extensions.code, 'SOUS_DEAD_LETTER_NOT_REPROCESSABLE', 'published once only');
      const done = await waitFor(id, terminal);
      assert.equal(done.status, 'COMPLETED');
      assert.deepEqual(done.output, { shipped: '221' });
      const resolved = await ok<{
        deadLetters: { status: string; resolvedBy: string; outcome: { stepRequeued: boolean } }[];
      }>(
        tokens.viewer,
        `query($e: ID) { deadLetters(filter: { executionId: $e, status: REPROCESSED }) { status resolvedBy outcome } }`,
        { e: id },
      );
      assert.equal(resolved.deadLetters[0]?.status, 'REPROCESSED');
      assert.equal(resolved.deadLetters[0].outcome.stepRequeued, true);
    } finally {
      await shipWorker.stop();
    }
  });

  it('discards dead letters and refuses selections that name nothing pending', async () => {
    const both = await gql(
      tokens.operator,
      `mutation { discardDeadLetters(ids: ["${randomUUID()}"], filter: { capability: "x" }) }`,
    );
    assert.equal(both.errors[0]?.extensions.code, 'SOUS_INVALID_ARGUMENT');
    const unknown = await gql(tokens.operator, `mutation { discardDeadLetters(ids: ["${randomUUID()}"]) }`);
    assert.equal(unknown.errors[0]?.extensions.code, 'SOUS_DEAD_LETTER_NOT_REPROCESSABLE');
    // A dead letter read from a DLT topic of this test: an undecodable record.
    const topic = `sous.cmd.${cap('junk')}.DLT`;
    await ensureTopics(kafka, [topic], { partitions: 1 });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'k', value: 'not json' }] });
    await producer.disconnect();
    let ids: string[] = [];
    const deadline = Date.now() + 60_000;
    while (ids.length === 0) {
      if (Date.now() > deadline) throw new Error('the junk dead letter was not ingested');
      await sleep(500);
      ids = (
        await ok<{ deadLetters: { id: string }[] }>(
          tokens.viewer,
          `query($t: String) { deadLetters(filter: { originalTopic: $t }) { id } }`,
          { t: `sous.cmd.${cap('junk')}` },
        )
      ).deadLetters.map((d) => d.id);
    }
    const notJson = await gql(
      tokens.operator,
      `mutation($ids: [ID!]) { reprocessDeadLetters(ids: $ids) { messageId } }`,
      {
        ids,
      },
    );
    assert.equal(notJson.errors[0]?.extensions.code, 'SOUS_DEAD_LETTER_NOT_REPROCESSABLE');
    const discarded = await ok<{ discardDeadLetters: string[] }>(
      tokens.operator,
      `mutation($t: String) { discardDeadLetters(filter: { originalTopic: $t }) }`,
      { t: `sous.cmd.${cap('junk')}` },
    );
    assert.deepEqual(discarded.discardDeadLetters, ids);
  });
});
