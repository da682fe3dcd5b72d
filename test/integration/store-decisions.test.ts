import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { EXECUTION_CHANNEL, executionChangesSchema } from '../../src/api/notifications.js';
import { applyReplies, type ReplyTopicMessage } from '../../src/control-plane/apply-reply.js';
import { InvalidStartError, RecipeNotFoundError } from '../../src/control-plane/errors.js';
import { startExecution, startExecutions } from '../../src/control-plane/executions.js';
import { PlanCache } from '../../src/control-plane/plan-cache.js';
import { registerRecipe } from '../../src/control-plane/recipes.js';
import { defaultDecisionEnvironment } from '../../src/control-plane/run-decision.js';
import { verifyExecution } from '../../src/control-plane/verify.js';
import { createDatabase } from '../../src/db/database.js';
import { migrateAll } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { recipe } from '../../src/recipe/index.js';
import { databaseUrl } from '../../src/stack/config.js';
import { completedReply, scheduledAttempts } from '../helpers/replies.js';
import { stackConfig, uniqueName } from '../helpers/stack.js';

/*
 * The store against a real PostgreSQL, without Kafka: replies are applied as the
 * control plane's consumer would apply a fetched batch, and every statement the
 * control plane sends is counted.
 */

describe('decisions written as sets', () => {
  let db: Kysely<Database>;
  let statements = 0;
  const env = defaultDecisionEnvironment(new PlanCache(), { replyTopic: uniqueName('test.replies') });

  before(async () => {
    db = createDatabase({
      connectionString: databaseUrl(stackConfig),
      poolSize: 2,
      applicationName: 'sous-test-store',
      log: (event) => {
        if (event.level === 'query') statements++;
      },
    });
    await migrateAll(db, databaseUrl(stackConfig));
  });
  after(() => db.destroy());

  async function tenSteps(executions: number): Promise<string[]> {
    let builder = recipe(uniqueName('store-ten').toLowerCase());
    for (let i = 0; i < 10; i++) builder = builder.task(`s${i}`, 'store.step');
    const plan = builder.build();
    await registerRecipe(db, plan);
    const ids: string[] = [];
    for (let i = 0; i < executions; i++) {
      ids.push((await startExecution(db, env, { recipe: plan.name, input: { i } })).executionId);
    }
    return ids;
  }

  /** The attempts in flight, as a worker would see their commands. */
  async function inFlight(ids: readonly string[]) {
    const { rows } = await sql<{ id: string; execution_id: string }>`
      SELECT id, execution_id FROM sous.step_attempt
      WHERE execution_id = ANY(${ids}::uuid[]) AND status = 'scheduled' ORDER BY execution_id`.execute(db);
    return rows;
  }

  const reply = (
    kind: 'step.started' | 'step.completed',
    attempt: { id: string; execution_id: string },
  ): ReplyTopicMessage =>
    kind === 'step.started'
      ? {
          kind,
          messageId: randomUUID(),
          executionId: attempt.execution_id,
          stepExecutionId: attempt.id,
          workerId: 'w',
          at: new Date().toISOString(),
        }
      : completedReply(attempt, { done: attempt.id });

  /** Drives every execution to its end, one batch of replies per step; statements of each batch. */
  async function drive(ids: readonly string[], kinds: readonly ('step.started' | 'step.completed')[]) {
    const perBatch: number[] = [];
    for (;;) {
      const attempts = await inFlight(ids);
      if (attempts.length === 0) return perBatch;
      const batch = kinds.flatMap((kind) => attempts.map((a) => reply(kind, a)));
      statements = 0;
      const outcome = await applyReplies(db, env, batch);
      perBatch.push(statements);
      assert.deepEqual(outcome, { applied: batch.length, duplicates: 0, unknown: [] });
    }
  }

  it('stores outputs and errors as the text the control plane wrote (json, 0024), and reads them back', async () => {
    const plan = recipe(uniqueName('store-json').toLowerCase()).task('a', 'store.step').build();
    await registerRecipe(db, plan);
    const { executionId } = await startExecution(db, env, { recipe: plan.name, input: {} });
    // Keys in an order jsonb would change (it sorts them), and a number it would print again.
    const output = { zeta: 1, b: [1.5, 'x', null], a: { y: true } };
    const [attempt] = await scheduledAttempts(db, [executionId]);
    assert.ok(attempt !== undefined);
    const { rows: running } = await sql<{ output: string; error: string }>`
      SELECT output::text AS output, error::text AS error FROM sous.execution WHERE id = ${executionId}`.execute(db);
    assert.deepEqual(running, [{ output: 'null', error: 'null' }]);
    await applyReplies(db, env, [completedReply(attempt, output)]);
    const { rows } = await sql<{ step: string; execution: string; status: string }>`
      SELECT s.output::text AS step, e.output::text AS execution, e.status FROM sous.step s
      JOIN sous.execution e ON e.id = s.execution_id WHERE s.execution_id = ${executionId}`.execute(db);
    assert.deepEqual(rows, [
      { step: JSON.stringify(output), execution: JSON.stringify({ a: output }), status: 'completed' },
    ]);
    assert.deepEqual(await verifyExecution(db, env.plans, executionId), []);
  });

  it('costs the same statements for a batch of one execution as for a batch of twelve', async () => {
    const one = await drive(await tenSteps(1), ['step.completed']);
    const ids = await tenSteps(12);
    const twelve = await drive(ids, ['step.started', 'step.completed']);
    assert.equal(one.length, 10);
    assert.equal(twelve.length, 10);
    // BEGIN, lock, execution, events, steps (update, insert), attempts (insert, update),
    // outbox (insert, delete), COMMIT: the last step schedules nothing. No dedupe row: a
    // reply seen before is recognised by the attempt's state.
    assert.deepEqual(twelve, one, `per batch: one execution ${one.join(',')}, twelve ${twelve.join(',')}`);
    assert.ok(Math.max(...twelve) <= 11, `at most 11 statements a batch, got ${twelve.join(',')}`);
    const { rows } = await sql<{ status: string; n: string }>`
      SELECT status, count(*) AS n FROM sous.execution WHERE id = ANY(${ids}::uuid[]) GROUP BY status`.execute(db);
    assert.deepEqual(rows, [{ status: 'completed', n: '12' }]);
    // The rows written as sets are the rows the event log gives.
    for (const id of ids) assert.deepEqual(await verifyExecution(db, env.plans, id), []);
  });

  it('applies a reply delivered twice once, in the same batch or a later one', async () => {
    const [id] = await tenSteps(1);
    assert.ok(id !== undefined);
    const [attempt] = await inFlight([id]);
    assert.ok(attempt !== undefined);
    const completed = reply('step.completed', attempt);
    const first = await applyReplies(db, env, [completed, completed]);
    assert.deepEqual(first, { applied: 1, duplicates: 1, unknown: [] });
    const events = (
      await sql<{ n: string }>`
      SELECT count(*) AS n FROM sous.execution_event WHERE execution_id = ${id}`.execute(db)
    ).rows[0]?.n;
    const again = await applyReplies(db, env, [{ ...completed, messageId: completed.messageId.toUpperCase() }]);
    assert.deepEqual(again, { applied: 0, duplicates: 1, unknown: [] });
    const after = (
      await sql<{ n: string }>`
      SELECT count(*) AS n FROM sous.execution_event WHERE execution_id = ${id}`.execute(db)
    ).rows[0]?.n;
    assert.equal(after, events, 'a duplicate appends no event');
    const stranger = reply('step.completed', { id: randomUUID(), execution_id: randomUUID() });
    const unknown = await applyReplies(db, env, [stranger]);
    assert.deepEqual(unknown, { applied: 0, duplicates: 0, unknown: [stranger] });
    assert.deepEqual(await verifyExecution(db, env.plans, id), []);
  });

  it('applies a completion a worker sent twice under two message ids once, and a heartbeat delivered twice once', async () => {
    const [id] = await tenSteps(1);
    assert.ok(id !== undefined);
    const [attempt] = await inFlight([id]);
    assert.ok(attempt !== undefined);
    const eventTypes = async () =>
      (
        await sql<{ type: string }>`
        SELECT type FROM sous.execution_event WHERE execution_id = ${id} ORDER BY seq`.execute(db)
      ).rows.map((r) => r.type);
    const heartbeat: ReplyTopicMessage = {
      kind: 'step.heartbeat',
      messageId: randomUUID(),
      executionId: attempt.execution_id,
      stepExecutionId: attempt.id,
      workerId: 'w',
      at: new Date().toISOString(),
      progress: { done: 1 },
    };
    const before = await eventTypes();
    assert.deepEqual(await applyReplies(db, env, [heartbeat]), { applied: 1, duplicates: 0, unknown: [] });
    assert.deepEqual(await applyReplies(db, env, [heartbeat]), { applied: 0, duplicates: 1, unknown: [] });
    // A completion whose send the worker retried: the same reply under a new id, at another offset.
    const completed = reply('step.completed', attempt);
    assert.deepEqual(await applyReplies(db, env, [completed]), { applied: 1, duplicates: 0, unknown: [] });
    const resent = { ...completed, messageId: randomUUID() };
    assert.deepEqual(await applyReplies(db, env, [resent]), { applied: 0, duplicates: 1, unknown: [] });
    const added = (await eventTypes()).slice(before.length);
    assert.equal(added.filter((t) => t === 'StepHeartbeat').length, 1, `events ${added.join(',')}`);
    assert.equal(added.filter((t) => t === 'StepCompleted').length, 1, `events ${added.join(',')}`);
    const next = await inFlight([id]);
    assert.equal(next.length, 1, 'the execution moved exactly one step on');
    assert.notEqual(next[0]?.id, attempt.id);
    assert.deepEqual(await verifyExecution(db, env.plans, id), []);
  });

  it('keeps one decision at a time per execution when two transactions take the same replies', async () => {
    const ids = await tenSteps(4);
    const attempts = await inFlight(ids);
    const batch = attempts.map((a) => reply('step.completed', a));
    // Two control-plane processes handed the same batch (a rebalance): the executions'
    // locks queue them, and the second finds every attempt already finished.
    const [a, b] = await Promise.all([applyReplies(db, env, batch), applyReplies(db, env, [...batch].reverse())]);
    assert.equal(a.applied + b.applied, batch.length);
    assert.equal(a.duplicates + b.duplicates, batch.length);
    for (const id of ids) assert.deepEqual(await verifyExecution(db, env.plans, id), []);
    const next = await inFlight(ids);
    assert.equal(next.length, ids.length, 'each execution moved exactly one step on');
  });

  it("a decision waiting for an execution's lock reads what the holder committed", async () => {
    const [id] = await tenSteps(1);
    assert.ok(id !== undefined);
    const holder = new pg.Client({ connectionString: databaseUrl(stackConfig) });
    const waiter = new pg.Client({ connectionString: databaseUrl(stackConfig) });
    await holder.connect();
    await waiter.connect();
    try {
      await holder.query('BEGIN');
      const held = await holder.query<{ last_seq: number }>('SELECT * FROM sous.lock_execution_heads($1::uuid[])', [
        [id],
      ]);
      const before = held.rows[0]?.last_seq;
      assert.ok(before !== undefined);
      await holder.query('UPDATE sous.execution SET last_seq = last_seq + 1 WHERE id = $1', [id]);
      await waiter.query('BEGIN');
      const waiterPid = (await waiter.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      const waiting = waiter.query<{ last_seq: number }>('SELECT * FROM sous.lock_execution_heads($1::uuid[])', [[id]]);
      // The second one waits on the advisory lock, not on a row.
      for (let i = 0; ; i++) {
        const { rows } = await holder.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' AND NOT granted`,
          [waiterPid],
        );
        if (rows[0]?.n === '1') break;
        assert.ok(i < 100, "the second transaction should wait for the execution's lock");
        await new Promise((r) => setTimeout(r, 50));
      }
      await holder.query('COMMIT');
      const seen = await waiting;
      assert.equal(seen.rows[0]?.last_seq, before + 1, 'the head read after the lock shows the committed change');
      await waiter.query('ROLLBACK');
    } finally {
      await holder.end();
      await waiter.end();
    }
  });

  it('announces the executions a batch changed in one notification, delivered on commit', async () => {
    const ids = await tenSteps(12);
    const attempts = await inFlight(ids);
    const listener = new pg.Client({ connectionString: databaseUrl(stackConfig) });
    await listener.connect();
    try {
      const payloads: string[] = [];
      listener.on('notification', (m) => {
        if (m.channel === EXECUTION_CHANNEL && m.payload !== undefined) payloads.push(m.payload);
      });
      await listener.query(`LISTEN ${EXECUTION_CHANNEL}`);
      await applyReplies(
        db,
        env,
        attempts.map((a) => reply('step.completed', a)),
      );
      // A round trip on the listening connection: notifications sent before it have arrived.
      await listener.query('SELECT 1');
      const mine = payloads
        .map((p) => executionChangesSchema.parse(JSON.parse(p)).filter((c) => ids.includes(c.id)))
        .filter((changes) => changes.length > 0);
      assert.equal(mine.length, 1, `one notification for the batch, got ${mine.length}`);
      assert.deepEqual(mine[0]?.map((c) => c.id).sort(), [...ids].sort());
      assert.ok(mine[0].every((c) => c.status === 'running' && c.seq > 1));
    } finally {
      await listener.end();
    }
  });

  it('starts a list of executions in one transaction with the statements of one start', async () => {
    let builder = recipe(uniqueName('store-bulk').toLowerCase());
    for (let i = 0; i < 3; i++) builder = builder.task(`s${i}`, 'store.step');
    const plan = builder.build();
    await registerRecipe(db, plan);
    const key = uniqueName('bulk-key');
    const earlier = await startExecution(db, env, { recipe: plan.name, version: 1, idempotencyKey: key });
    const count = async (starts: number) => {
      statements = 0;
      const started = await startExecutions(
        db,
        env,
        Array.from({ length: starts }, (_, i) => ({ recipe: plan.name, version: 1, input: { i } })),
      );
      assert.equal(started.length, starts);
      assert.ok(started.every((s) => s.created && s.status === 'running'));
      return statements;
    };
    assert.equal(await count(30), await count(3), 'thirty starts cost the statements of three');
    const fresh = uniqueName('bulk-fresh');
    const mixed = await startExecutions(db, env, [
      { recipe: plan.name, input: { n: 1 } },
      { recipe: plan.name, idempotencyKey: key },
      { recipe: plan.name, idempotencyKey: fresh },
      { recipe: plan.name, idempotencyKey: fresh },
    ]);
    assert.equal(mixed[0]?.created, true);
    assert.deepEqual(mixed[1], { executionId: earlier.executionId, created: false, status: 'running' });
    assert.equal(mixed[2]?.created, true);
    assert.deepEqual(mixed[3], { ...mixed[2], created: false }, 'a key twice in one list starts one execution');
    for (const s of mixed) assert.deepEqual(await verifyExecution(db, env.plans, s.executionId), []);
    const attempts = await inFlight(mixed.map((s) => s.executionId));
    assert.equal(attempts.length, 3, 'each new execution sent its first command');
    // A missing recipe anywhere in the list: nothing is started.
    const before = (await sql<{ n: string }>`SELECT count(*) AS n FROM sous.execution`.execute(db)).rows[0]?.n;
    await assert.rejects(
      startExecutions(db, env, [{ recipe: plan.name }, { recipe: uniqueName('no-such-recipe').toLowerCase() }]),
      (e: unknown) => e instanceof RecipeNotFoundError,
    );
    const after = (await sql<{ n: string }>`SELECT count(*) AS n FROM sous.execution`.execute(db)).rows[0]?.n;
    assert.equal(after, before);
    await assert.rejects(
      startExecutions(
        db,
        env,
        Array.from({ length: 10_001 }, () => ({ recipe: plan.name })),
      ),
      (e: unknown) => e instanceof InvalidStartError && /at most 10000 executions a call, got 10001/.test(e.message),
    );
  });
});
