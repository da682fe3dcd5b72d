// The retention purge (src/control-plane/retention.ts) against a real PostgreSQL, in a
// database of this test's own: executions run through the control plane's own reply path
// (without Kafka), are moved back in time, and purged.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { applyReplies, type ReplyTopicMessage } from '../../src/control-plane/apply-reply.js';
import { cancelExecution, startExecution } from '../../src/control-plane/executions.js';
import { PlanCache } from '../../src/control-plane/plan-cache.js';
import { registerRecipe } from '../../src/control-plane/recipes.js';
import { purgeExpiredExecutions, purgeRegionInbox, type PurgeOptions } from '../../src/control-plane/retention.js';
import { defaultDecisionEnvironment } from '../../src/control-plane/run-decision.js';
import { createDatabase } from '../../src/db/database.js';
import { migrateAll } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { recipe, type Duration } from '../../src/recipe/index.js';
import { stackConfig, uniqueName } from '../helpers/stack.js';

const DAY = 86_400_000;
const name = uniqueName('sous_test_retention').replaceAll('-', '_');
const url = `postgres://${stackConfig.pgUser}@127.0.0.1:${stackConfig.pgPort}/${name}`;
const admin = new pg.Client({ host: '127.0.0.1', port: stackConfig.pgPort, user: 'postgres', database: 'postgres' });
let db: Kysely<Database>;
const env = defaultDecisionEnvironment(new PlanCache(), { replyTopic: 'test.replies' });

before(async () => {
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} OWNER ${pg.escapeIdentifier(stackConfig.pgUser)}`);
  db = createDatabase({ connectionString: url, poolSize: 4, applicationName: 'sous-test-retention' });
  await migrateAll(db, url);
});
after(async () => {
  await db.destroy();
  await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  await admin.end();
});

/** Registers a two-step recipe of a new name, with its own retention when given. */
async function twoSteps(retention?: Duration | 'forever'): Promise<string> {
  let builder = recipe(uniqueName('ret').toLowerCase());
  if (retention !== undefined) builder = builder.retention(retention);
  const plan = builder.task('a', 'ret.step').task('b', 'ret.step').build();
  await registerRecipe(db, plan);
  return plan.name;
}

async function start(recipeName: string): Promise<string> {
  return (await startExecution(db, env, { recipe: recipeName, input: {} })).executionId;
}

/** Runs executions to completion: each attempt started, heartbeating (a dedupe row) and completed. */
async function complete(ids: readonly string[]): Promise<void> {
  for (;;) {
    const { rows } = await sql<{ id: string; execution_id: string }>`
      SELECT id, execution_id FROM sous.step_attempt
      WHERE execution_id = ANY(${ids}::uuid[]) AND status = 'scheduled'`.execute(db);
    if (rows.length === 0) return;
    const base = (a: { id: string; execution_id: string }) => ({
      messageId: randomUUID(),
      executionId: a.execution_id,
      stepExecutionId: a.id,
      workerId: 'w',
      at: new Date().toISOString(),
    });
    const replies: ReplyTopicMessage[] = rows.flatMap((a) => [
      { kind: 'step.started' as const, ...base(a) },
      { kind: 'step.heartbeat' as const, ...base(a) },
      { kind: 'step.completed' as const, ...base(a), output: { ok: true } },
    ]);
    await applyReplies(db, env, replies);
  }
}

/** Moves executions (and the rows the purge finds by time) `days` into the past. */
async function age(ids: readonly string[], days: number): Promise<void> {
  const shift = `${days} days`;
  await sql`UPDATE sous.execution SET created_at = created_at - ${shift}::interval,
      updated_at = updated_at - ${shift}::interval, finished_at = finished_at - ${shift}::interval
    WHERE id = ANY(${ids}::uuid[])`.execute(db);
  await sql`UPDATE sous.processed_message SET processed_at = processed_at - ${shift}::interval
    WHERE execution_id = ANY(${ids}::uuid[])`.execute(db);
}

/** `count` executions of a recipe, run to completion and finished `days` ago. */
async function finishedDaysAgo(recipeName: string, count: number, days: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await start(recipeName));
  await complete(ids);
  await age(ids, days);
  return ids;
}

/** Rows of each table that belong to the executions. */
async function rowsOf(ids: readonly string[]) {
  const { rows } = await sql<Record<string, number>>`
    SELECT
      (SELECT count(*)::int FROM sous.execution WHERE id = ANY(${ids}::uuid[])) AS executions,
      (SELECT count(*)::int FROM sous.execution_event WHERE execution_id = ANY(${ids}::uuid[])) AS events,
      (SELECT count(*)::int FROM sous.step WHERE execution_id = ANY(${ids}::uuid[])) AS steps,
      (SELECT count(*)::int FROM sous.step_attempt WHERE execution_id = ANY(${ids}::uuid[])) AS attempts,
      (SELECT count(*)::int FROM sous.foreach_item WHERE execution_id = ANY(${ids}::uuid[])) AS foreach_items,
      (SELECT count(*)::int FROM sous_payload.payload WHERE execution_id = ANY(${ids}::uuid[])) AS payloads,
      (SELECT count(*)::int FROM sous.processed_message WHERE execution_id = ANY(${ids}::uuid[])) AS processed,
      (SELECT count(*)::int FROM sous.execution_snapshot WHERE execution_id = ANY(${ids}::uuid[])) AS snapshots`.execute(
    db,
  );
  return rows[0] ?? {};
}

const purge = (recipeNames: readonly string[], options: Partial<PurgeOptions> = {}) =>
  purgeExpiredExecutions(db, { retention: 30 * DAY, batchSize: 500, recipeNames, ...options });

/** Adds a forEach item, a claim-check payload, a state snapshot and an event row from before 0023 to an execution (rows the purge must find too). */
async function extras(id: string): Promise<void> {
  await sql`INSERT INTO sous.execution_snapshot (execution_id, seq, state) VALUES (${id}, 1, '{}')`.execute(db);
  // An event as releases before 0023 wrote them, one per row.
  await sql`INSERT INTO sous.execution_event_row (execution_id, seq, type, data, created_at)
    VALUES (${id}, 999, 'SignalReceived', '{}', now())`.execute(db);
  await sql`INSERT INTO sous.foreach_item (execution_id, step_key, item_index, data) VALUES (${id}, 'loop', 0, '{}')`.execute(
    db,
  );
  await sql`INSERT INTO sous_payload.payload (id, execution_id, data, bytes) VALUES (${randomUUID()}, ${id}, '{}', 2)`.execute(
    db,
  );
}

describe('retention purge', () => {
  it('removes exactly the old finished executions with all their rows, keeps running and young ones', async () => {
    const r = await twoSteps();
    const [oldDone, oldCancelled, oldRunning, youngDone] = [
      await start(r),
      await start(r),
      await start(r),
      await start(r),
    ];
    await complete([oldDone, youngDone]);
    await cancelExecution(db, env, oldCancelled, 'test');
    await extras(oldDone);
    await extras(oldRunning);
    await age([oldDone, oldCancelled, oldRunning], 40);
    await age([youngDone], 10);
    const before = await rowsOf([oldDone]);
    assert.ok(before.events !== undefined && before.events >= 6, 'the execution has its events');
    assert.deepEqual(
      [before.steps, before.attempts, before.foreach_items, before.payloads, before.processed, before.snapshots],
      [2, 2, 1, 1, 2, 1],
    );
    const kept = await rowsOf([oldRunning, youngDone]);

    const report = await purge([r]);
    assert.equal(report.executions, 2);
    assert.deepEqual(await rowsOf([oldDone, oldCancelled]), {
      executions: 0,
      events: 0,
      steps: 0,
      attempts: 0,
      foreach_items: 0,
      payloads: 0,
      processed: 0,
      snapshots: 0,
    });
    assert.deepEqual(await rowsOf([oldRunning, youngDone]), kept, 'nothing of the others is touched');
    assert.equal((await purge([r])).executions, 0, 'a second run finds nothing');
    // Outside a purge the log stays append-only: the batches (0023) and the rows from before.
    await assert.rejects(
      sql`DELETE FROM sous.execution_event_batch WHERE execution_id = ${youngDone}`.execute(db),
      /sous\.execution_event_batch is append-only \(DELETE refused\)/,
    );
    await assert.rejects(
      sql`UPDATE sous.execution_event_batch SET first_seq = 1 WHERE execution_id = ${youngDone}`.execute(db),
      /append-only \(UPDATE refused\)/,
    );
    await sql`INSERT INTO sous.execution_event_row (execution_id, seq, type, data, created_at)
      VALUES (${youngDone}, 1000, 'SignalReceived', '{}', now())`.execute(db);
    await assert.rejects(
      sql`DELETE FROM sous.execution_event_row WHERE execution_id = ${youngDone}`.execute(db),
      /sous\.execution_event_row is append-only \(DELETE refused\)/,
    );
  });

  it('purges nothing when off', async () => {
    const r = await twoSteps();
    const id = await start(r);
    await complete([id]);
    await age([id], 400);
    assert.equal((await purge([r], { retention: 'off' })).executions, 0);
    assert.equal((await rowsOf([id])).executions, 1);
  });

  it('a recipe retention wins over the default; the latest version decides', async () => {
    const short = await twoSteps('1d');
    const long = await twoSteps('90d');
    const kept = await twoSteps('forever');
    const plain = await twoSteps();
    const ids = {
      short: await start(short),
      long: await start(long),
      kept: await start(kept),
      plain: await start(plain),
      shortYoung: await start(short),
    };
    await complete(Object.values(ids));
    await age([ids.short, ids.long, ids.kept, ids.plain], 40);
    await age([ids.shortYoung], 2);
    const report = await purge([short, long, kept, plain]);
    assert.equal(report.executions, 3);
    const left = await sql<{ id: string }>`SELECT id FROM sous.execution
      WHERE id = ANY(${Object.values(ids)}::uuid[])`.execute(db);
    assert.deepEqual(
      left.rows.map((row) => row.id).sort(),
      [ids.long, ids.kept].sort(),
      'short (1d) and plain (default 30d) are gone after 40 days, long (90d) and forever stay',
    );

    // A default of forever purges only recipes that ask for it.
    const another = await start(short);
    const plainToo = await start(plain);
    await complete([another, plainToo]);
    await age([another, plainToo], 40);
    assert.equal((await purge([short, plain], { retention: 'forever' })).executions, 1);
    assert.equal((await rowsOf([plainToo])).executions, 1);

    // Version 2 of `long` keeps forever: executions of version 1 are kept too.
    const v2 = recipe(long).retention('forever').task('a', 'ret.step').task('b', 'ret.step').build();
    await registerRecipe(db, v2);
    await age([ids.long], 100);
    assert.equal((await purge([long])).executions, 0);
  });

  it('works in bounded batches, by executions and by events', async () => {
    const r = await twoSteps();
    await finishedDaysAgo(r, 7, 40);
    const byCount = await purge([r], { batchSize: 3 });
    assert.deepEqual([byCount.executions, byCount.batches], [7, 3], '3 + 3 + 1');

    const more = await finishedDaysAgo(r, 4, 40);
    const { rows } = await sql<{ n: number }>`SELECT last_seq AS n FROM sous.execution WHERE id = ${more[0]}`.execute(
      db,
    );
    const events = rows[0]?.n ?? 0;
    // Room for two executions' events a batch.
    const byEvents = await purge([r], { maxEventsPerBatch: events * 2 });
    assert.deepEqual([byEvents.executions, byEvents.batches], [4, 2]);
  });

  it('stops starting batches when its time is up, and says so', async () => {
    const r = await twoSteps();
    await finishedDaysAgo(r, 2, 40);
    const report = await purge([r], { maxRunMs: 0 });
    assert.deepEqual([report.executions, report.more], [0, true]);
    assert.equal((await purge([r])).executions, 2);
  });

  it('skips executions another transaction holds, without waiting; two purges at once share the work', async () => {
    const r = await twoSteps();
    const ids = await finishedDaysAgo(r, 6, 40);
    const [held, ...rest] = ids;
    assert.ok(held !== undefined);
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      // The lock a decision holds (sous.lock_execution_heads).
      await holder.query('SELECT pg_advisory_xact_lock(sous.execution_lock_key($1))', [held]);
      const [a, b] = await Promise.all([purge([r], { batchSize: 1 }), purge([r], { batchSize: 1 })]);
      assert.equal(a.executions + b.executions, rest.length);
      assert.equal((await rowsOf([held])).executions, 1, 'the held one is left for a later run');
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    assert.equal((await purge([r])).executions, 1);
  });

  describe('sub-recipes go with their root', () => {
    /** An execution row written directly: a parent and its children at any status and age. */
    async function seed(recipeName: string, status: string, finishedDaysAgo: number | null, parent?: string) {
      const id = randomUUID();
      await sql`INSERT INTO sous.execution (id, recipe_name, recipe_version, status, input, reply_topic, state,
          last_seq, created_at, updated_at, finished_at, parent_execution_id, parent_step_key)
        VALUES (${id}, ${recipeName}, 1, ${status}, '{}', 'test.replies', '{}', 1, now() - interval '50 days',
          now() - interval '50 days',
          CASE WHEN ${finishedDaysAgo}::int IS NULL THEN NULL ELSE now() - make_interval(days => ${finishedDaysAgo}::int) END,
          ${parent ?? null}, ${parent === undefined ? null : 'child'})`.execute(db);
      await sql`INSERT INTO sous.execution_event_batch (execution_id, first_seq, last_seq, created_at, events)
        VALUES (${id}, 1, 1, now() - interval '50 days', '[{"type":"ExecutionStarted"}]')`.execute(db);
      return id;
    }

    it('a finished root with a running sub-recipe is kept, and purged with it once it has finished', async () => {
      const r = await twoSteps();
      const child = await twoSteps('1m');
      const root = await seed(r, 'completed', 40);
      const running = await seed(child, 'running', null, root);
      const grandchild = await seed(child, 'completed', 45, running);
      assert.equal((await purge([r, child])).executions, 0, 'nothing while a sub-recipe runs');
      assert.equal((await rowsOf([root, running, grandchild])).executions, 3);

      await sql`UPDATE sous.execution SET status = 'completed', finished_at = now() - interval '39 days'
        WHERE id = ${running}`.execute(db);
      const report = await purge([r, child]);
      assert.deepEqual([report.executions, report.events], [3, 3]);
      assert.deepEqual(await rowsOf([root, running, grandchild]), {
        executions: 0,
        events: 0,
        steps: 0,
        attempts: 0,
        foreach_items: 0,
        payloads: 0,
        processed: 0,
        snapshots: 0,
      });
    });

    it('a finished sub-recipe of a running root is not purged on its own retention', async () => {
      const r = await twoSteps();
      const child = await twoSteps('1m');
      const root = await seed(r, 'running', null);
      const done = await seed(child, 'completed', 40, root);
      assert.equal((await purge([r, child])).executions, 0);
      assert.equal((await rowsOf([root, done])).executions, 2);
    });
  });

  it('purges region inbox rows older than the retention and 7 days, keeps held ones and young ones', async () => {
    await sql`DELETE FROM sous.region_inbox`.execute(db);
    const row = async (state: string, ageDays: number) => {
      const id = randomUUID();
      await sql`INSERT INTO sous.region_inbox (id, execution_id, origin_region, state, received_at)
        VALUES (${id}::uuid, ${randomUUID()}::uuid, 'home', ${state}, now() - make_interval(days => ${ageDays}))`.execute(
        db,
      );
      return id;
    };
    const kept = async () =>
      (await sql<{ id: string }>`SELECT id::text FROM sous.region_inbox`.execute(db)).rows.map((r) => r.id).sort();
    await row('dispatched', 9);
    await row('cancelled', 9);
    const oldHeld = await row('held', 9);
    const sixDays = await row('dispatched', 6);

    // Retention 1 day: still 7 days are kept (the inbox topic may redeliver a week-old command).
    assert.equal(await purgeRegionInbox(db, DAY, { batchSize: 1 }), 2);
    assert.deepEqual(await kept(), [oldHeld, sixDays].sort());

    // Retention 30 days: a 20-day-old row stays, a 40-day-old one goes.
    const twentyDays = await row('dispatched', 20);
    await row('cancelled', 40);
    assert.equal(await purgeRegionInbox(db, 30 * DAY), 1);
    assert.deepEqual(await kept(), [oldHeld, sixDays, twentyDays].sort());

    // Forever or off: nothing goes.
    await row('dispatched', 400);
    assert.equal(await purgeRegionInbox(db, 'forever'), 0);
    assert.equal(await purgeRegionInbox(db, 'off'), 0);
    assert.equal((await kept()).length, 4);
  });
});
