// What a new user tripped on (issue 12, item 4), each on the real stack: NUL characters in
// arguments, malformed request bodies, GraphiQL offline, the builder's plan given to
// registerRecipe(json:), a dead-lettered attempt shown as running (and counted in flight
// by reporting.step_latency), and npm start minting a token on every run.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { z } from 'zod';
import { buildApi } from '../../src/api/app.js';
import { createApiToken, revokeApiToken } from '../../src/api/auth.js';
import { storedAdminToken } from '../../src/api/stored-token.js';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { recipe } from '../../src/recipe/index.js';
import { databaseUrl, kafkaBrokers } from '../../src/stack/config.js';
import { createWorker, defineCapability, retryableError, type Worker } from '../../src/worker/index.js';
import { startTestControlPlane } from '../helpers/control-plane.js';
import { stackConfig, uniqueName } from '../helpers/stack.js';

const ns = uniqueName('newuser').replaceAll('-', '');
const cap = (name: string) => `test${ns}.${name}`;

let cp: ControlPlane & { replyTopic: string };
let app: FastifyInstance;
let url: string;
let admin: string;
const cleanup: (() => Promise<unknown>)[] = [];

interface Response {
  status: number;
  body: {
    data?: Record<string, unknown> | null;
    errors?: { message: string; extensions: { code: string; retryable: boolean; argument?: string } }[];
  };
}

async function post(body: string, token: string = admin, contentType = 'application/json'): Promise<Response> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': contentType, authorization: `Bearer ${token}` },
    body,
  });
  return { status: response.status, body: (await response.json()) as Response['body'] };
}

const gql = (query: string, variables: Record<string, unknown> = {}) => post(JSON.stringify({ query, variables }));

before(async () => {
  cp = await startTestControlPlane();
  cleanup.push(() => cp.stop());
  app = await buildApi({ controlPlane: cp, databaseUrl: databaseUrl(stackConfig), graphiql: true });
  await app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  cleanup.push(() => app.close());
  admin = (await createApiToken(cp.db, uniqueName('test-admin'), 'admin', 'new-user.test')).token;
});

after(async () => {
  for (const step of cleanup.reverse()) await step();
});

describe('a NUL character in any string argument', () => {
  const auditRows = async () =>
    Number((await sql<{ n: string }>`SELECT count(*) AS n FROM sous.audit_log`.execute(cp.db)).rows[0]?.n);

  const refusals: [label: string, query: string, variables: Record<string, unknown>, argument: string][] = [
    [
      'executions filter, literal',
      '{ executions(filter: {recipe: "a\\u0000b"}) { edges { node { id } } } }',
      {},
      'filter.recipe',
    ],
    [
      'executions filter, variable',
      'query($r: String) { executions(filter: {recipe: $r}) { edges { node { id } } } }',
      { r: 'a\u0000b' },
      'filter.recipe',
    ],
    [
      'deadLetters filter',
      'query($f: DeadLetterFilter) { deadLetters(filter: $f) { id } }',
      { f: { capability: 'x\u0000' } },
      'filter.capability',
    ],
    [
      'deadLetters error code, literal',
      '{ deadLetters(filter: {errorCode: "\\u0000"}) { id } }',
      {},
      'filter.errorCode',
    ],
    [
      'startRecipe recipe',
      'mutation($r: String!) { startRecipe(recipe: $r) { created } }',
      { r: 'a\u0000b' },
      'recipe',
    ],
    [
      'startRecipe input, a key of the JSON',
      'mutation($i: JSON) { startRecipe(recipe: "r", input: $i) { created } }',
      { i: { nested: [{ 'k\u0000': 1 }] } },
      'input.nested[0].k\u0000',
    ],
    [
      'signal name',
      'mutation { signal(executionId: "00000000-0000-0000-0000-000000000000", name: "go\\u0000") { id } }',
      {},
      'name',
    ],
  ];

  for (const [label, query, variables, argument] of refusals) {
    it(`${label}: a 400 SOUS_INVALID_ARGUMENT naming the argument, and nothing runs`, async () => {
      const audited = await auditRows();
      const result = await gql(query, variables);
      assert.equal(result.status, 400, JSON.stringify(result.body));
      assert.equal(result.body.errors?.length, 1, JSON.stringify(result.body));
      const error = result.body.errors[0];
      assert.equal(error?.extensions.code, 'SOUS_INVALID_ARGUMENT');
      assert.equal(error.extensions.retryable, false);
      assert.equal(error.extensions.argument, argument);
      assert.match(error.message, /NUL character/);
      assert.equal(await auditRows(), audited, 'no mutation ran (no audit row)');
    });
  }

  it('a clean argument beside works as before', async () => {
    const result = await gql('query($r: String) { executions(filter: {recipe: $r}) { edges { node { id } } } }', {
      r: `${ns}.none`,
    });
    assert.equal(result.status, 200, JSON.stringify(result.body));
    assert.deepEqual(result.body.data, { executions: { edges: [] } });
  });
});

describe('a request body that cannot be read', () => {
  it('malformed JSON with a valid token: 400 SOUS_REQUEST_MALFORMED, not a 500', async () => {
    const result = await post('{"query": ');
    assert.equal(result.status, 400, JSON.stringify(result.body));
    assert.equal(result.body.errors?.[0]?.extensions.code, 'SOUS_REQUEST_MALFORMED');
    assert.equal(result.body.errors[0].extensions.retryable, false);
    assert.match(result.body.errors[0].message, /not valid JSON/);
  });

  it('an empty JSON body is malformed too; an unsupported content type is a 415 saying so', async () => {
    const empty = await post('');
    assert.equal(empty.status, 400, JSON.stringify(empty.body));
    assert.equal(empty.body.errors?.[0]?.extensions.code, 'SOUS_REQUEST_MALFORMED');
    const xml = await post('<query/>', admin, 'application/xml');
    assert.equal(xml.status, 415, JSON.stringify(xml.body));
    assert.equal(xml.body.errors?.[0]?.extensions.code, 'SOUS_REQUEST_MALFORMED');
  });

  it('without a valid token the answer is 401 before the body is read', async () => {
    const result = await post('{"query": ', 'sous_not-a-token');
    assert.equal(result.status, 401);
    assert.equal(result.body.errors?.[0]?.extensions.code, 'SOUS_UNAUTHENTICATED');
  });
});

describe('GraphiQL offline', () => {
  it('references only local URLs, each served with its content type', async () => {
    const page = await fetch(`${url}/graphiql`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    const html = await page.text();
    assert.doesNotMatch(html, /https?:\/\//, 'the page names no remote URL');
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '');
    assert.equal(refs.length, 5, JSON.stringify(refs));
    for (const ref of refs) {
      assert.ok(ref.startsWith('/graphiql/assets/'), ref);
      const asset = await fetch(`${url}${ref}`);
      assert.equal(asset.status, 200, ref);
      assert.match(asset.headers.get('content-type') ?? '', ref.endsWith('.css') ? /text\/css/ : /javascript/, ref);
      const text = await asset.text();
      assert.ok(text.length > 100, `${ref} has content`);
      // What the page runs does not load anything remote either.
      if (ref.endsWith('start.js')) assert.doesNotMatch(text, /https?:\/\//);
    }
    assert.equal((await fetch(`${url}/graphiql/assets/..%2F..%2Fpackage.json`)).status, 404);
    assert.equal((await fetch(`${url}/graphiql/assets/unknown.js`)).status, 404);
  });
});

describe('a dead-lettered step, from the builder plan given to registerRecipe(json:)', () => {
  let worker: Worker;
  before(async () => {
    // Fails retryably after starting: with one attempt allowed, the command is dead-lettered
    // while its attempt was running.
    const failing = defineCapability({
      name: cap('fails'),
      input: z.unknown(),
      output: z.unknown(),
      handler: async () => {
        throw retryableError('upstream_down', 'the upstream is down');
      },
    });
    worker = createWorker({
      brokers: kafkaBrokers(stackConfig),
      capabilities: [failing],
      groupId: uniqueName('test-newuser-worker'),
      handleSignals: false,
    });
    await worker.start();
    cleanup.push(() => worker.stop());
  });

  it('the plan recipe(...).build() returns registers as JSON, the same as its authoring form', async () => {
    const plan = recipe(`${ns}.parked`)
      .task('work', cap('fails'), { retry: { maxAttempts: 1 } })
      .build();
    const register = (json: unknown) =>
      gql('mutation($json: JSON) { registerRecipe(json: $json) { name version created } }', { json });
    const first = await register(JSON.parse(JSON.stringify(plan)));
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(first.body.data, { registerRecipe: { name: plan.name, version: 1, created: true } });
    const authoring = { name: plan.name, steps: [{ id: 'work', capability: cap('fails'), retry: { maxAttempts: 1 } }] };
    const again = await register(authoring);
    assert.deepEqual(again.body.data, { registerRecipe: { name: plan.name, version: 1, created: false } });
  });

  it('parks as dead_lettered with its attempt dead_lettered, not running, and out of step_latency.in_flight', async () => {
    const started = await gql('mutation($r: String!) { startRecipe(recipe: $r) { execution { id } } }', {
      r: `${ns}.parked`,
    });
    const id = (started.body.data as { startRecipe: { execution: { id: string } } }).startRecipe.execution.id;
    type Step = { key: string; status: string; attempts: { attempt: number; status: string }[] };
    let steps: Step[] = [];
    const deadline = Date.now() + 60_000;
    while (!steps.some((s) => s.status === 'dead_lettered')) {
      assert.ok(Date.now() < deadline, `still ${JSON.stringify(steps)}`);
      await sleep(100);
      const view = await gql(
        'query($id: ID!) { execution(id: $id) { steps { key status attempts { attempt status } } } }',
        {
          id,
        },
      );
      steps = (view.body.data as { execution: { steps: Step[] } }).execution.steps;
    }
    assert.deepEqual(steps, [
      { key: 'work', status: 'dead_lettered', attempts: [{ attempt: 1, status: 'dead_lettered' }] },
    ]);
    const { rows } = await sql<{ attempts: string; in_flight: string; failed: string; completed: string }>`
      SELECT attempts, in_flight, failed, completed FROM reporting.step_latency WHERE capability = ${cap('fails')}`.execute(
      cp.db,
    );
    assert.deepEqual(
      rows.map((r) => ({ ...r })),
      [{ attempts: '1', in_flight: '0', failed: '0', completed: '0' }],
    );
  });
});

describe('npm start keeps one admin token', () => {
  it('reuses the stored token while it is a live admin token, and mints (and stores) a new one otherwise', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sous-token-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'stack', 'admin-token');
    const purpose = uniqueName('npm-start-test');
    const first = await storedAdminToken(cp.db, file, purpose);
    assert.equal(first.created, true);
    assert.equal((await readFile(file, 'utf8')).trim(), first.token);
    assert.equal((await stat(file)).mode & 0o777, 0o600, 'only its owner reads it');
    const second = await storedAdminToken(cp.db, file, purpose);
    assert.deepEqual(second, { token: first.token, created: false });
    const me = await post(JSON.stringify({ query: '{ me { role } }' }), second.token);
    assert.deepEqual(me.body.data, { me: { role: 'ADMIN' } });
    // A revoked (or unknown: a stack rebuilt from scratch) token is replaced.
    const { rows } = await sql<{ name: string }>`
      SELECT name FROM sous.api_token WHERE created_by = ${purpose} AND revoked_at IS NULL`.execute(cp.db);
    assert.equal(rows.length, 1);
    await revokeApiToken(cp.db, rows[0]?.name ?? '');
    const third = await storedAdminToken(cp.db, file, purpose);
    assert.equal(third.created, true);
    assert.notEqual(third.token, first.token);
    assert.equal((await readFile(file, 'utf8')).trim(), third.token);
  });
});
