// The audit log on the real stack: an allowed mutation's audit row commits in the same
// transaction as its change (a commit that fails, or a backend killed mid-transaction,
// leaves neither), and the auditLog query (admins only, filtered, paged, bad arguments
// refused with codes; a refused read is audited too).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { createApiToken, type Role } from '../../src/api/auth.js';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { startTestApi } from '../helpers/api.js';
import { uniqueName } from '../helpers/stack.js';

const ns = uniqueName('audit').replaceAll('-', '');
const waiting = `${ns}.waiting`;
const waitingYaml = (name: string) => `name: ${name}\nsteps:\n  - id: wait\n    type: waitForSignal\n    signal: go\n`;

let cp: ControlPlane;
let url: string;
const cleanup: (() => Promise<unknown>)[] = [];

interface Response {
  data: Record<string, unknown> | null;
  errors: { message: string; extensions: { code: string } }[];
}

async function gql(token: string, query: string, variables: Record<string, unknown> = {}): Promise<Response> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as Partial<Response>;
  return { data: body.data ?? null, errors: body.errors ?? [] };
}

/** A token of its own for one test, so the audit rows it makes are that test's alone. */
async function token(role: Role, prefix: string): Promise<{ name: string; token: string }> {
  const name = uniqueName(`${ns}-${prefix}`);
  return { name, token: (await createApiToken(cp.db, name, role, 'audit.test')).token };
}

async function auditRows(actor: string) {
  const { rows } = await sql<{ operation: string; outcome: string; error_code: string | null }>`
    SELECT operation, outcome, error_code FROM sous.audit_log WHERE actor = ${actor} ORDER BY id`.execute(cp.db);
  return rows.map((r) => [r.operation, r.outcome, r.error_code]);
}

const count = async (query: ReturnType<typeof sql<{ n: string }>>) => Number((await query.execute(cp.db)).rows[0]?.n);

before(async () => {
  ({ controlPlane: cp, url } = await startTestApi(ns, cleanup));
  const admin = await token('admin', 'setup');
  const registered = await gql(admin.token, `mutation($y: String) { registerRecipe(yaml: $y) { version } }`, {
    y: waitingYaml(waiting),
  });
  assert.deepEqual(registered.errors, []);
});

after(async () => {
  for (const undo of cleanup.reverse()) await undo();
});

/**
 * The mutations checked for atomicity, one per place that opens an action's transaction:
 * each with what it changes, as a count that is 1 when the change committed and 0 when not.
 */
function cases(execution: string) {
  const key = uniqueName('key');
  const recipe = `${ns}.${uniqueName('r').replaceAll('-', '')}`;
  const newToken = uniqueName(`${ns}-made`);
  const schedule = uniqueName('schedule');
  return [
    {
      operation: 'startRecipe',
      query: `mutation($r: String!, $k: String) { startRecipe(recipe: $r, idempotencyKey: $k) { created } }`,
      variables: { r: waiting, k: key },
      changed: () => count(sql`SELECT count(*) AS n FROM sous.execution WHERE idempotency_key = ${key}`),
    },
    {
      operation: 'cancelExecution',
      query: `mutation($id: ID!) { cancelExecution(id: $id) { status } }`,
      variables: { id: execution },
      changed: () =>
        count(sql`SELECT count(*) AS n FROM sous.execution WHERE id = ${execution} AND status = 'cancelled'`),
    },
    {
      operation: 'registerRecipe',
      query: `mutation($y: String) { registerRecipe(yaml: $y) { version } }`,
      variables: { y: waitingYaml(recipe) },
      changed: () => count(sql`SELECT count(*) AS n FROM sous.recipe WHERE name = ${recipe}`),
    },
    {
      operation: 'createApiToken',
      query: `mutation($n: String!) { createApiToken(name: $n, role: VIEWER) { name } }`,
      variables: { n: newToken },
      changed: () => count(sql`SELECT count(*) AS n FROM sous.api_token WHERE name = ${newToken}`),
    },
    {
      operation: 'createSchedule',
      query: `mutation($s: ScheduleInput!) { createSchedule(schedule: $s) { created } }`,
      variables: { s: { name: schedule, recipe: waiting, cron: '0 0 1 1 *' } },
      changed: () => count(sql`SELECT count(*) AS n FROM sous.schedule WHERE name = ${schedule}`),
    },
  ];
}

/** An execution of `waiting` that waits for its signal (so cancelling it changes it). */
async function waitingExecution(caller: string): Promise<string> {
  const started = await gql(caller, `mutation($r: String!) { startRecipe(recipe: $r) { execution { id } } }`, {
    r: waiting,
  });
  assert.deepEqual(started.errors, []);
  return (started.data as { startRecipe: { execution: { id: string } } }).startRecipe.execution.id;
}

describe('an audited mutation and its audit row commit together', () => {
  it('a normal run commits both the change and its ok row', async () => {
    const admin = await token('admin', 'normal');
    const all = cases(await waitingExecution(admin.token));
    for (const c of all) {
      const result = await gql(admin.token, c.query, c.variables);
      assert.deepEqual(result.errors, [], c.operation);
      assert.equal(await c.changed(), 1, `${c.operation}: the change committed`);
    }
    assert.deepEqual(
      (await auditRows(admin.name)).slice(1),
      all.map((c) => [c.operation, 'ok', null]),
      'one ok row per mutation',
    );
  });

  it('a commit that fails after the audit row keeps neither the change nor its ok row', async () => {
    const admin = await token('admin', 'commit');
    const execution = await waitingExecution(admin.token);
    // Checked at COMMIT, after the action and its audit row are both written: the
    // transaction fails as a whole. Only this test's actor is refused.
    const fn = `sous.${ns}_refuse_commit`;
    await sql
      .raw(
        `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'audit.test: commit refused'; END; $$;
         CREATE CONSTRAINT TRIGGER ${ns}_refuse_commit AFTER INSERT ON sous.audit_log
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
           WHEN (NEW.actor = '${admin.name}' AND NEW.outcome = 'ok') EXECUTE FUNCTION ${fn}();`,
      )
      .execute(cp.db);
    const all = cases(execution);
    try {
      for (const c of all) {
        const result = await gql(admin.token, c.query, c.variables);
        assert.equal(result.errors[0]?.extensions.code, 'SOUS_INTERNAL', c.operation);
        assert.equal(await c.changed(), 0, `${c.operation}: the change rolled back with its audit row`);
      }
    } finally {
      await sql.raw(`DROP TRIGGER ${ns}_refuse_commit ON sous.audit_log; DROP FUNCTION ${fn}();`).execute(cp.db);
    }
    assert.deepEqual(
      (await auditRows(admin.name)).slice(1),
      all.map((c) => [c.operation, 'error', 'SOUS_INTERNAL']),
      'no ok row committed; each failure is recorded on its own',
    );
  });

  it('a backend terminated mid-transaction, after the audit row, loses both', async () => {
    const admin = await token('admin', 'killed');
    const key = uniqueName('key');
    const name = uniqueName(`${ns}-killed`);
    // The backend writing this actor's ok row kills itself: a crash between the audit
    // insert and COMMIT, which PostgreSQL rolls back.
    const fn = `sous.${ns}_terminate`;
    await sql
      .raw(
        `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); RETURN NULL; END; $$;
         CREATE TRIGGER ${ns}_terminate AFTER INSERT ON sous.audit_log FOR EACH ROW
           WHEN (NEW.actor = '${admin.name}' AND NEW.outcome = 'ok') EXECUTE FUNCTION ${fn}();`,
      )
      .execute(cp.db);
    try {
      const started = await gql(
        admin.token,
        `mutation($r: String!, $k: String) { startRecipe(recipe: $r, idempotencyKey: $k) { created } }`,
        {
          r: waiting,
          k: key,
        },
      );
      assert.ok(started.errors.length > 0, 'the start failed');
      const created = await gql(
        admin.token,
        `mutation($n: String!) { createApiToken(name: $n, role: VIEWER) { name } }`,
        {
          n: name,
        },
      );
      assert.ok(created.errors.length > 0, 'the token creation failed');
    } finally {
      await sql.raw(`DROP TRIGGER ${ns}_terminate ON sous.audit_log; DROP FUNCTION ${fn}();`).execute(cp.db);
    }
    assert.equal(await count(sql`SELECT count(*) AS n FROM sous.execution WHERE idempotency_key = ${key}`), 0);
    assert.equal(await count(sql`SELECT count(*) AS n FROM sous.api_token WHERE name = ${name}`), 0);
    assert.deepEqual(
      (await auditRows(admin.name)).map(([operation, outcome]) => [operation, outcome]),
      [
        ['startRecipe', 'error'],
        ['createApiToken', 'error'],
      ],
      'no ok row; the failures are recorded',
    );
    // The pools dropped the dead connections: the next calls work.
    const again = await gql(admin.token, `mutation($n: String!) { createApiToken(name: $n, role: VIEWER) { name } }`, {
      n: name,
    });
    assert.deepEqual(again.errors, []);
    assert.equal(await count(sql`SELECT count(*) AS n FROM sous.api_token WHERE name = ${name}`), 1);
  });
});

interface AuditPage {
  auditLog: {
    edges: { cursor: string; node: { operation: string; outcome: string; errorCode: string | null; actor: string } }[];
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
  };
}

const AUDIT_LOG = `query($f: AuditLogFilter, $first: Int, $after: String) {
  auditLog(filter: $f, first: $first, after: $after) {
    edges { cursor node { id at tokenId actor role operation arguments outcome errorCode } }
    pageInfo { hasNextPage endCursor }
  } }`;

describe('the auditLog query', () => {
  let admin: { name: string; token: string };
  let subject: { name: string; token: string };
  const startedAt = new Date(Date.now() - 1000).toISOString();

  before(async () => {
    admin = await token('admin', 'reader');
    // The audited calls of one operator of this test's own: 2 ok, 1 denied, 1 error.
    subject = await token('operator', 'subject');
    await waitingExecution(subject.token);
    await waitingExecution(subject.token);
    await gql(subject.token, `mutation($y: String) { registerRecipe(yaml: $y) { version } }`, {
      y: waitingYaml(waiting),
    });
    await gql(subject.token, `mutation { cancelExecution(id: "not-a-uuid") { id } }`);
  });

  async function page(variables: Record<string, unknown>): Promise<AuditPage['auditLog']> {
    const result = await gql(admin.token, AUDIT_LOG, variables);
    assert.deepEqual(result.errors, []);
    return (result.data as unknown as AuditPage).auditLog;
  }

  it('gives an admin the entries, newest first, filtered and a page at a time', async () => {
    const seen: [string, string, string | null][] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const p = await page({ f: { actor: subject.name }, first: 3, after: cursor });
      assert.ok(p.edges.length <= 3);
      seen.push(
        ...p.edges.map((e): [string, string, string | null] => [e.node.operation, e.node.outcome, e.node.errorCode]),
      );
      if (!p.pageInfo.hasNextPage) break;
      cursor = p.pageInfo.endCursor;
    }
    assert.deepEqual(seen, [
      ['cancelExecution', 'ERROR', 'SOUS_INVALID_ARGUMENT'],
      ['registerRecipe', 'DENIED', 'SOUS_FORBIDDEN'],
      ['startRecipe', 'OK', null],
      ['startRecipe', 'OK', null],
    ]);
    const denied = await page({ f: { actor: subject.name, outcome: 'DENIED' } });
    assert.deepEqual(
      denied.edges.map((e) => e.node.operation),
      ['registerRecipe'],
    );
    const starts = await page({ f: { actor: subject.name, operation: 'startRecipe' } });
    assert.equal(starts.edges.length, 2);
    assert.deepEqual(starts.edges[0]?.node, {
      ...starts.edges[0]?.node,
      actor: subject.name,
      role: 'OPERATOR',
      outcome: 'OK',
      arguments: { recipe: waiting },
    });
    assert.equal((await page({ f: { actor: subject.name, after: startedAt } })).edges.length, 4);
    assert.equal((await page({ f: { actor: subject.name, after: '2999-01-01T00:00:00Z' } })).edges.length, 0);
    assert.equal((await page({ f: { actor: subject.name, before: startedAt } })).edges.length, 0);
  });

  it('refuses viewers and operators with SOUS_FORBIDDEN, and audits the refusal', async () => {
    for (const role of ['viewer', 'operator'] as const) {
      const caller = await token(role, `refused-${role}`);
      const refused = await gql(caller.token, AUDIT_LOG, { f: { actor: subject.name } });
      assert.equal(refused.errors[0]?.extensions.code, 'SOUS_FORBIDDEN', role);
      assert.equal(refused.data, null);
      assert.deepEqual(await auditRows(caller.name), [['auditLog', 'denied', 'SOUS_FORBIDDEN']], role);
    }
  });

  it('refuses bad arguments with SOUS_INVALID_ARGUMENT naming the argument', async () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ after: 'garbage' }, 'after'],
      // Base64url JSON, but not a cursor this API gave out.
      [{ after: Buffer.from(JSON.stringify({ id: 'x' })).toString('base64url') }, 'after'],
      [{ first: 501 }, 'first'],
      [{ first: 0 }, 'first'],
      [{ f: { after: 'yesterday' } }, 'after'],
      [{ f: { before: '2026-13-45' } }, 'before'],
    ];
    for (const [variables, argument] of bad) {
      const result = await gql(admin.token, AUDIT_LOG, variables);
      const error = result.errors[0];
      assert.equal(error?.extensions.code, 'SOUS_INVALID_ARGUMENT', JSON.stringify(variables));
      assert.match(error.message, new RegExp(`\\b${argument}\\b`), error.message);
    }
  });
});
