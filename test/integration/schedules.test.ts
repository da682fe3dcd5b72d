// Scheduled starts on the real stack: the evaluator with an injected clock (exactly once
// under two evaluators, overlap and missed-run policies, pause and resume, a refused start),
// the GraphQL fields (roles, audit), and one real tick of graphile-worker's cron.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import { Writable } from 'node:stream';
import { createApiToken } from '../../src/api/auth.js';
import { runCli } from '../../src/cli/main.js';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { signalExecution } from '../../src/control-plane/executions.js';
import { PlanCache } from '../../src/control-plane/plan-cache.js';
import { registerRecipe } from '../../src/control-plane/recipes.js';
import { defaultDecisionEnvironment, type DecisionEnvironment } from '../../src/control-plane/run-decision.js';
import {
  createSchedule,
  deleteSchedule,
  evaluateSchedules,
  pauseSchedule,
  resumeSchedule,
  type ScheduleDefinition,
} from '../../src/control-plane/schedules.js';
import { createDatabase } from '../../src/db/database.js';
import { migrateAll } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { recipe } from '../../src/recipe/index.js';
import { databaseUrl } from '../../src/stack/config.js';
import { startTestApi } from '../helpers/api.js';
import { stackConfig, uniqueName } from '../helpers/stack.js';

const url = databaseUrl(stackConfig);
const at = (iso: string) => new Date(iso);
/** Far from the real clock, so the real cron of a control plane never sees these schedules due. */
const T0 = '2031-01-01T00:00:30Z';

interface RunRow {
  fire_time: Date;
  outcome: string;
  catch_up: boolean;
  execution_id: string | null;
  error: { code: string } | null;
}

describe('scheduled starts, evaluated with an injected clock', () => {
  let db: Kysely<Database>;
  let second: Kysely<Database>;
  let env: DecisionEnvironment;
  let otherEnv: DecisionEnvironment;
  const waiting = uniqueName('sched-wait').toLowerCase();
  const created: string[] = [];

  before(async () => {
    db = createDatabase({ connectionString: url, poolSize: 4, applicationName: 'sous-test-schedules' });
    second = createDatabase({ connectionString: url, poolSize: 4, applicationName: 'sous-test-schedules-2' });
    await migrateAll(db, url);
    env = defaultDecisionEnvironment(new PlanCache(), { replyTopic: uniqueName('test.replies') });
    otherEnv = defaultDecisionEnvironment(new PlanCache(), { replyTopic: env.replyTopic });
    // Runs until signalled: the overlap policies see it running.
    await registerRecipe(db, recipe(waiting).waitForSignal('go', { signal: 'go' }).build());
  });
  after(async () => {
    for (const id of created) await deleteSchedule(db, id);
    await Promise.all([db.destroy(), second.destroy()]);
  });

  async function make(definition: Partial<ScheduleDefinition>, now = at(T0)) {
    const { schedule } = await createSchedule(
      db,
      env,
      { name: uniqueName('sched'), recipe: waiting, cron: '* * * * *', ...definition },
      'schedules.test',
      now,
    );
    created.push(schedule.id);
    return schedule;
  }
  const evaluate = (id: string, now: string, on: [Kysely<Database>, DecisionEnvironment] = [db, env]) =>
    evaluateSchedules(on[0], on[1], { now: at(now), scheduleIds: [id] });
  async function runs(id: string): Promise<RunRow[]> {
    const { rows } = await sql<RunRow>`
      SELECT fire_time, outcome, catch_up, execution_id, error FROM sous.schedule_run
      WHERE schedule_id = ${id} ORDER BY fire_time`.execute(db);
    return rows;
  }
  const outcomes = async (id: string) =>
    (await runs(id)).map(
      (r) => `${r.fire_time.toISOString().slice(11, 16)} ${r.outcome}${r.catch_up ? ' catch-up' : ''}`,
    );
  async function execution(id: string) {
    const { rows } = await sql<{ status: string; input: unknown; idempotency_key: string }>`
      SELECT status, input, idempotency_key FROM sous.execution WHERE id = ${id}`.execute(db);
    assert.ok(rows[0] !== undefined, `execution ${id} exists`);
    return rows[0];
  }
  const finish = (executionId: string) => signalExecution(db, env, executionId, 'go', null);

  it('starts a fire exactly once, with its input, however many evaluators run it', async () => {
    const s = await make({ input: { report: 'daily' } });
    assert.equal(s.next_fire_at.toISOString(), '2031-01-01T00:01:00.000Z', 'the first fire after creation');
    assert.deepEqual((await evaluate(s.id, '2031-01-01T00:00:59Z')).started, 0, 'nothing before the fire');
    // Two control planes (two pools) evaluating the same fire at once, twice each.
    const reports = await Promise.all([
      evaluate(s.id, '2031-01-01T00:01:01Z'),
      evaluate(s.id, '2031-01-01T00:01:01Z', [second, otherEnv]),
      evaluate(s.id, '2031-01-01T00:01:02Z'),
      evaluate(s.id, '2031-01-01T00:01:02Z', [second, otherEnv]),
    ]);
    assert.equal(
      reports.reduce((n, r) => n + r.started, 0),
      1,
    );
    const [run] = await runs(s.id);
    assert.equal(run?.outcome, 'started');
    assert.ok(run.execution_id !== null);
    const started = await execution(run.execution_id);
    assert.deepEqual(started.input, { report: 'daily' });
    assert.equal(started.idempotency_key, `schedule:${s.id}:2031-01-01T00:01:00.000Z`);
    const { rows } = await sql<{ next_fire_at: Date; last_execution_id: string }>`
      SELECT next_fire_at, last_execution_id FROM sous.schedule WHERE id = ${s.id}`.execute(db);
    const row = rows[0];
    assert.ok(row !== undefined);
    assert.equal(row.next_fire_at.toISOString(), '2031-01-01T00:02:00.000Z');
    assert.equal(row.last_execution_id, run.execution_id);
  });

  it('skips a fire while the execution it started last runs (skip), then starts again', async () => {
    const s = await make({ overlap: 'skip' });
    await evaluate(s.id, '2031-01-01T00:01:01Z');
    await evaluate(s.id, '2031-01-01T00:02:01Z');
    const first = (await runs(s.id))[0]?.execution_id;
    assert.ok(first != null);
    await finish(first);
    assert.equal((await execution(first)).status, 'completed');
    await evaluate(s.id, '2031-01-01T00:03:01Z');
    assert.deepEqual(await outcomes(s.id), ['00:01 started', '00:02 skipped', '00:03 started']);
  });

  it('keeps one fire waiting (queue_one) and starts it once the running execution ends', async () => {
    const s = await make({ overlap: 'queue_one' });
    await evaluate(s.id, '2031-01-01T00:01:01Z');
    await evaluate(s.id, '2031-01-01T00:02:01Z');
    await evaluate(s.id, '2031-01-01T00:03:01Z');
    assert.deepEqual(await outcomes(s.id), ['00:01 started', '00:02 queued', '00:03 skipped']);
    await evaluate(s.id, '2031-01-01T00:03:30Z');
    assert.deepEqual((await outcomes(s.id))[1], '00:02 queued', 'it waits while the first runs');
    await finish((await runs(s.id))[0]?.execution_id ?? '');
    // No fire due at 00:03:40: the queued fire is the evaluation's only work.
    const report = await evaluate(s.id, '2031-01-01T00:03:40Z');
    assert.equal(report.started, 1);
    const queued = (await runs(s.id))[1];
    assert.equal(queued?.outcome, 'started');
    assert.equal((await execution(queued.execution_id ?? '')).status, 'running');
  });

  it('starts beside the running execution (allow)', async () => {
    const s = await make({ overlap: 'allow' });
    await evaluate(s.id, '2031-01-01T00:01:01Z');
    await evaluate(s.id, '2031-01-01T00:02:01Z');
    const ids = (await runs(s.id)).map((r) => r.execution_id);
    assert.equal(ids.length, 2);
    for (const id of ids) assert.equal((await execution(id ?? '')).status, 'running');
  });

  it('runs a missed fire once after downtime (run_once), or records it missed (skip)', async () => {
    // 03:00 in Paris each day is 02:00 UTC; the control planes were down from 01:00 to 05:00.
    const daily = { cron: '0 3 * * *', timeZone: 'Europe/Paris' };
    const once = await make({ ...daily, missedRuns: 'run_once' }, at('2031-01-01T01:00:00Z'));
    const skip = await make({ ...daily, missedRuns: 'skip' }, at('2031-01-01T01:00:00Z'));
    assert.equal(once.next_fire_at.toISOString(), '2031-01-01T02:00:00.000Z');
    await evaluate(once.id, '2031-01-01T05:00:00Z');
    await evaluate(skip.id, '2031-01-01T05:00:00Z');
    assert.deepEqual(await outcomes(once.id), ['02:00 started catch-up']);
    assert.deepEqual(await outcomes(skip.id), ['02:00 missed']);
    // Every-minute schedule down an hour: the fires on time run, the downtime adds no run.
    const minutely = await make({ overlap: 'allow', missedRuns: 'run_once' });
    await evaluate(minutely.id, '2031-01-01T01:00:20Z');
    assert.deepEqual(await outcomes(minutely.id), ['00:58 missed', '00:59 started', '01:00 started']);
  });

  it('starts nothing while paused; resumes from the next fire, not the paused ones', async () => {
    const s = await make({});
    await pauseSchedule(db, s.id, at('2031-01-01T00:00:40Z'));
    await pauseSchedule(db, s.id, at('2031-01-01T00:00:41Z'));
    assert.equal((await evaluate(s.id, '2031-01-01T00:05:01Z')).schedules, 0);
    const resumed = await resumeSchedule(db, s.id, at('2031-01-01T00:10:30Z'));
    assert.equal(resumed.paused_at, null);
    assert.equal(resumed.next_fire_at.toISOString(), '2031-01-01T00:11:00.000Z');
    const again = await resumeSchedule(db, s.id, at('2031-01-01T00:10:45Z'));
    assert.equal(again.next_fire_at.toISOString(), '2031-01-01T00:11:00.000Z', 'a second resume changes nothing');
    await evaluate(s.id, '2031-01-01T00:11:01Z');
    assert.deepEqual(await outcomes(s.id), ['00:11 started']);
  });

  it('records a start the control plane refuses as a failed run and goes on', async () => {
    const s = await make({});
    await sql`UPDATE sous.schedule SET recipe_version = 999 WHERE id = ${s.id}`.execute(db);
    const report = await evaluate(s.id, '2031-01-01T00:01:01Z');
    assert.equal(report.failed, 1);
    const [run] = await runs(s.id);
    assert.equal(run?.outcome, 'failed');
    assert.equal(run.error?.code, 'SOUS_RECIPE_NOT_FOUND');
    assert.equal((await evaluate(s.id, '2031-01-01T00:01:30Z')).schedules, 0, 'the failed fire is decided');
  });

  it('refuses a bad definition, and a taken name with another definition', async () => {
    await assert.rejects(
      createSchedule(db, env, { name: 'x', recipe: waiting, cron: 'every minute' }, 't'),
      /SOUS_SCHEDULE_INVALID|cron: "every minute" must have 5 fields/,
    );
    await assert.rejects(
      createSchedule(db, env, { name: uniqueName('x'), recipe: uniqueName('nope'), cron: '* * * * *' }, 't'),
      (error: Error & { code?: string }) => error.code === 'SOUS_RECIPE_NOT_FOUND',
    );
    const s = await make({ name: uniqueName('named') });
    const again = await createSchedule(db, env, { name: s.name, recipe: waiting, cron: '* * * * *' }, 't');
    assert.deepEqual([again.created, again.schedule.id], [false, s.id]);
    await assert.rejects(
      createSchedule(db, env, { name: s.name, recipe: waiting, cron: '*/5 * * * *' }, 't'),
      (error: Error & { code?: string }) => error.code === 'SOUS_SCHEDULE_EXISTS',
    );
  });
});

describe('scheduled starts over GraphQL and graphile-worker cron', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  let cp: ControlPlane;
  let apiUrl: string;
  const tokens: Record<'viewer' | 'operator', string> = { viewer: '', operator: '' };
  const name = uniqueName('sched-api');
  const recipeName = uniqueName('sched-api-recipe').toLowerCase();
  let scheduleId: string | undefined;

  before(async () => {
    ({ controlPlane: cp, url: apiUrl } = await startTestApi(uniqueName('s').replaceAll('-', ''), cleanup));
    for (const role of ['viewer', 'operator'] as const) {
      tokens[role] = (await createApiToken(cp.db, uniqueName(`test-${role}`), role, 'schedules.test')).token;
    }
    await cp.registerRecipe(recipe(recipeName).waitForSignal('go', { signal: 'go' }).build());
  });
  after(async () => {
    // A schedule left behind would start executions in every later test's control plane.
    if (scheduleId !== undefined) await cp.deleteSchedule(scheduleId);
    for (const step of cleanup.reverse()) await step();
  });

  async function gql(token: string, query: string, variables: Record<string, unknown> = {}) {
    const response = await fetch(`${apiUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    return (await response.json()) as {
      data: Record<string, unknown> | null;
      errors?: { message: string; extensions: { code: string } }[];
    };
  }
  const SCHEDULE = `id name recipe cron timeZone input overlap missedRuns paused nextRunAt
    lastRun { fireTime outcome catchUp executionId execution { id status } }
    runs(first: 5) { fireTime outcome }`;

  it('creates, lists, pauses, resumes and deletes a schedule, audited and role-checked', async () => {
    const create = `mutation($s: ScheduleInput!) { createSchedule(schedule: $s) { created schedule { ${SCHEDULE} } } }`;
    const input = {
      name,
      recipe: recipeName,
      cron: '* * * * *',
      timeZone: 'Europe/Paris',
      input: { n: 1 },
      overlap: 'QUEUE_ONE',
    };
    const denied = await gql(tokens.viewer, create, { s: input });
    assert.equal(denied.errors?.[0]?.extensions.code, 'SOUS_FORBIDDEN');
    const bad = await gql(tokens.operator, create, { s: { ...input, timeZone: 'Nowhere/Land' } });
    const refusal = bad.errors?.[0];
    assert.equal(refusal?.extensions.code, 'SOUS_SCHEDULE_INVALID');
    assert.match(refusal.message, /timeZone: "Nowhere\/Land" is not an IANA time zone/);

    const made = await gql(tokens.operator, create, { s: input });
    assert.equal(made.errors, undefined, JSON.stringify(made.errors));
    const { created, schedule } = made.data?.createSchedule as {
      created: boolean;
      schedule: { id: string; overlap: string; missedRuns: string; nextRunAt: string; lastRun: unknown };
    };
    scheduleId = schedule.id;
    assert.equal(created, true);
    assert.deepEqual([schedule.overlap, schedule.missedRuns, schedule.lastRun], ['QUEUE_ONE', 'RUN_ONCE', null]);
    assert.ok(Date.parse(schedule.nextRunAt) > Date.now() && Date.parse(schedule.nextRunAt) <= Date.now() + 60_000);
    const retried = await gql(tokens.operator, create, { s: input });
    assert.equal((retried.data?.createSchedule as { created: boolean }).created, false, 'a retried create');

    const paused = await gql(tokens.operator, `mutation($id: ID!) { pauseSchedule(id: $id) { paused nextRunAt } }`, {
      id: schedule.id,
    });
    assert.deepEqual(paused.data?.pauseSchedule, { paused: true, nextRunAt: null });
    const resumed = await gql(tokens.operator, `mutation($id: ID!) { resumeSchedule(id: $id) { paused nextRunAt } }`, {
      id: schedule.id,
    });
    assert.equal((resumed.data?.resumeSchedule as { paused: boolean }).paused, false);
    const badId = await gql(tokens.operator, `mutation { pauseSchedule(id: "nope") { id } }`);
    assert.equal(badId.errors?.[0]?.extensions.code, 'SOUS_INVALID_ARGUMENT');

    const listed = await gql(tokens.viewer, `{ schedules(first: 1000) { ${SCHEDULE} } }`);
    const mine = (listed.data?.schedules as { id: string; timeZone: string; input: unknown }[]).find(
      (s) => s.id === schedule.id,
    );
    assert.deepEqual([mine?.timeZone, mine?.input], ['Europe/Paris', { n: 1 }]);

    const { rows } = await sql<{ operation: string; outcome: string; role: string }>`
      SELECT operation, outcome, role FROM sous.audit_log
      WHERE operation LIKE '%Schedule' AND (arguments->'schedule'->>'name' = ${name} OR arguments->>'id' = ${schedule.id})
      ORDER BY id`.execute(cp.db);
    assert.deepEqual(
      rows.map((r) => `${r.operation} ${r.role} ${r.outcome}`),
      [
        'createSchedule viewer denied',
        'createSchedule operator error',
        'createSchedule operator ok',
        'createSchedule operator ok',
        'pauseSchedule operator ok',
        'resumeSchedule operator ok',
      ],
    );
  });

  it('starts the schedule on graphile-worker cron, and shows the run as the last one', async () => {
    assert.ok(scheduleId !== undefined);
    // The next minute's tick of the control plane's own runner (up to ~60 s).
    const deadline = Date.now() + 90_000;
    type LastRun = { outcome: string; execution: { status: string } | null } | null;
    let last = null as LastRun;
    while (Date.now() < deadline) {
      const read = await gql(tokens.viewer, `query($id: ID!) { schedule(id: $id) { ${SCHEDULE} } }`, {
        id: scheduleId,
      });
      last = (read.data?.schedule as { lastRun: LastRun }).lastRun;
      if (last !== null) break;
      await sleep(1000);
    }
    assert.equal(last?.outcome, 'STARTED');
    assert.equal(last.execution?.status, 'RUNNING');
    // Counted once the task ends (just after its transaction commits).
    let counted = '';
    for (let i = 0; i < 50 && !/sous_schedule_fires_total\{outcome="started"\} [1-9]/.test(counted); i++) {
      counted = await cp.observability.registry.metrics();
      await sleep(100);
    }
    assert.match(counted, /sous_schedule_fires_total\{outcome="started"\} [1-9]/);

    const deleted = await gql(tokens.operator, `mutation($id: ID!) { deleteSchedule(id: $id) }`, { id: scheduleId });
    assert.equal(deleted.data?.deleteSchedule, true);
    const again = await gql(tokens.operator, `mutation($id: ID!) { deleteSchedule(id: $id) }`, { id: scheduleId });
    assert.equal(again.data?.deleteSchedule, false);
    scheduleId = undefined;
  });

  it('drives schedules from the CLI', async () => {
    const cli = async (...args: string[]) => {
      let out = '';
      let err = '';
      const sink = (write: (text: string) => void) =>
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            write(chunk.toString('utf8'));
            done();
          },
        });
      const io = { out: sink((t) => (out += t)), err: sink((t) => (err += t)) };
      const code = await runCli(['--api-url', `${apiUrl}/graphql`, '--token', tokens.operator, ...args], io);
      return { code, out, err };
    };
    const cliName = uniqueName('sched-cli');
    const made = await cli(
      'schedule',
      'create',
      cliName,
      '--recipe',
      recipeName,
      '--cron',
      '0 6 * * 1',
      '--tz',
      'Asia/Tokyo',
      '--input',
      '{"k":2}',
      '--overlap',
      'allow',
      '--json',
    );
    assert.equal(made.code, 0, made.err);
    const { schedule } = JSON.parse(made.out) as { schedule: { id: string; overlap: string; nextRunAt: string } };
    try {
      assert.equal(schedule.overlap, 'ALLOW');
      // Monday 06:00 in Tokyo is Sunday 21:00 UTC.
      assert.match(schedule.nextRunAt, /T21:00:00/);
      const listed = await cli('schedule', 'list', '--first', '1000');
      assert.equal(listed.code, 0, listed.err);
      assert.match(
        listed.out,
        new RegExp(`${cliName}\\s+${schedule.id}\\s+${recipeName}\\s+0 6 \\* \\* 1 Asia/Tokyo\\s+active`),
      );
      assert.match((await cli('schedule', 'pause', schedule.id)).out, /paused/);
      const shown = await cli('schedule', 'show', schedule.id);
      assert.match(shown.out, /state:\s+paused/);
      assert.match((await cli('schedule', 'resume', schedule.id)).out, /active: next run/);
      const bad = await cli('schedule', 'create', uniqueName('x'), '--recipe', recipeName, '--cron', '* * *');
      assert.equal(bad.code, 1);
      assert.match(bad.err, /cron: "\* \* \*" must have 5 fields/);
    } finally {
      assert.equal((await cli('schedule', 'delete', schedule.id)).code, 0);
    }
    assert.equal((await cli('schedule', 'show', schedule.id)).code, 1);
  });
});
