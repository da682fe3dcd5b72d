import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import { applyReplies, type ReplyTopicMessage } from '../../src/control-plane/apply-reply.js';
import { ExecutionStates, currentStates } from '../../src/control-plane/execution-states.js';
import { cancelExecution, signalExecution, startExecution } from '../../src/control-plane/executions.js';
import { PlanCache } from '../../src/control-plane/plan-cache.js';
import { registerRecipe } from '../../src/control-plane/recipes.js';
import { defaultDecisionEnvironment, runDecision } from '../../src/control-plane/run-decision.js';
import { verifyExecution } from '../../src/control-plane/verify.js';
import { createDatabase } from '../../src/db/database.js';
import { migrateAll } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { replay } from '../../src/engine/evolve.js';
import type { EngineEvent } from '../../src/engine/events.js';
import { recipe } from '../../src/recipe/index.js';
import { databaseUrl } from '../../src/stack/config.js';
import { selectEvents } from '../../src/store/events.js';
import { stackConfig, uniqueName } from '../helpers/stack.js';

/*
 * The execution state is a snapshot plus the event log (0010_state_snapshots.sql, and
 * 0017_snapshot_table.sql, which moved the snapshot off the execution row): a snapshot is
 * written every `snapshotEvery` events, and a control plane's cached copy is used only
 * while the row names the batch that cached it.
 * Against a real PostgreSQL, without Kafka: replies are applied as the consumer would.
 */

describe('execution state snapshots', () => {
  let db: Kysely<Database>;
  const plans = new PlanCache();
  const replyTopic = uniqueName('test.replies');
  const environment = (snapshotEvery = 128) =>
    defaultDecisionEnvironment(plans, { replyTopic, states: new ExecutionStates({ snapshotEvery }) });

  before(async () => {
    db = createDatabase({
      connectionString: databaseUrl(stackConfig),
      poolSize: 2,
      applicationName: 'sous-test-state',
    });
    await migrateAll(db, databaseUrl(stackConfig));
  });
  after(() => db.destroy());

  async function register(steps: number): Promise<string> {
    let builder = recipe(uniqueName('snap').toLowerCase());
    for (let i = 0; i < steps; i++) builder = builder.task(`s${i}`, 'snap.step');
    const plan = builder.build();
    await registerRecipe(db, plan);
    return plan.name;
  }

  async function row(id: string) {
    const { rows } = await sql<{
      state_seq: number | null;
      last_seq: number;
      written_by: string | null;
      status: string;
    }>`
      SELECT state_seq, last_seq, written_by, status FROM sous.execution WHERE id = ${id}`.execute(db);
    assert.ok(rows[0] !== undefined, `execution ${id} exists`);
    return rows[0];
  }

  async function completeNext(env: ReturnType<typeof environment>, id: string): Promise<boolean> {
    const { rows } = await sql<{ id: string }>`
      SELECT id FROM sous.step_attempt WHERE execution_id = ${id} AND status = 'scheduled'`.execute(db);
    const attempt = rows[0];
    if (attempt === undefined) return false;
    const reply: ReplyTopicMessage = {
      kind: 'step.completed',
      messageId: randomUUID(),
      executionId: id,
      stepExecutionId: attempt.id,
      workerId: 'w',
      at: new Date().toISOString(),
      output: { done: attempt.id },
    };
    assert.deepEqual(await applyReplies(db, env, [reply]), { applied: 1, duplicates: 0, unknown: [] });
    return true;
  }

  async function events(id: string): Promise<EngineEvent[]> {
    return selectEvents(db, id);
  }

  async function snapshotRow(id: string) {
    const { rows } = await sql<{ seq: number; state: unknown }>`
      SELECT seq, state FROM sous.execution_snapshot WHERE execution_id = ${id}`.execute(db);
    return rows[0];
  }

  async function rowState(id: string): Promise<unknown> {
    const { rows } = await sql<{ state: unknown }>`SELECT state FROM sous.execution WHERE id = ${id}`.execute(db);
    return rows[0]?.state;
  }

  it('writes a snapshot every N events, none at start or end; the snapshot and the log agree at every step', async () => {
    const env = environment(5);
    const name = await register(12);
    const { executionId } = await startExecution(db, env, { recipe: name, input: {} });
    const start = await row(executionId);
    assert.equal(start.state_seq, 0, 'a new execution has no snapshot: its few events are its state');
    assert.equal(await snapshotRow(executionId), undefined);
    assert.equal(await rowState(executionId), null, 'the execution row carries no state');
    const snapshotsAt = new Set<number>();
    while (await completeNext(env, executionId)) {
      const now = await row(executionId);
      assert.ok(now.state_seq !== null);
      assert.ok(now.last_seq - now.state_seq < 5, `at most 4 events after the snapshot, got ${JSON.stringify(now)}`);
      if (now.state_seq > 0) {
        assert.equal((await snapshotRow(executionId))?.seq, now.state_seq, 'the row names the stored snapshot');
        snapshotsAt.add(now.state_seq);
      }
      assert.equal(await rowState(executionId), null);
      // verify compares the snapshot with the log up to its seq, the rest with the whole log.
      assert.deepEqual(await verifyExecution(db, plans, executionId), []);
      // The state the next decision starts from, read without the cache, is the log's.
      const plan = await plans.get(db, name, 1);
      assert.deepEqual(
        (await currentStates(db, plans, [executionId])).get(executionId),
        replay(await events(executionId), plan),
      );
    }
    const end = await row(executionId);
    assert.equal(end.status, 'completed');
    assert.ok(end.last_seq - (end.state_seq ?? 0) < 5, 'the end wrote no snapshot of its own');
    // Not every decision wrote the state: far fewer snapshots than steps.
    assert.ok(snapshotsAt.size < 12 && snapshotsAt.size >= 3, `snapshots at ${[...snapshotsAt].join(',')}`);
    // Every decision but the first found its state cached.
    assert.equal(env.states.misses, 0);
    assert.ok(env.states.hits >= 12);
  });

  it('does not trust a state cached by a batch that rolled back when another process wrote the same seq', async () => {
    const name = await register(1);
    // A snapshot with every decision: A's last decision stores the state it computed.
    const a = environment(1);
    const b = environment(1);
    const { executionId } = await startExecution(db, a, { recipe: name, input: {} });
    // A decides a signal in a transaction that then fails: its cache holds seq n+1 with x.
    await assert.rejects(
      db.transaction().execute(async (trx) => {
        await runDecision(trx, a, executionId, { kind: 'signal', name: 'x', payload: 'x' });
        throw new Error('rolled back after the decision');
      }),
      /rolled back/,
    );
    // Another process (B) writes seq n+1 with y: the same seq A cached, another batch.
    await signalExecution(db, b, executionId, 'y', 'y');
    const missesBefore = a.states.misses;
    await signalExecution(db, a, executionId, 'z', 'z');
    assert.equal(a.states.misses, missesBefore + 1, 'A rebuilt the state instead of using its cache');
    // A's cancel stores its state as the snapshot: it must be the log's (y then z, no x).
    await cancelExecution(db, a, executionId);
    assert.deepEqual(await verifyExecution(db, plans, executionId), []);
    const state = (await currentStates(db, plans, [executionId])).get(executionId);
    assert.deepEqual(state?.signals, { y: ['y'], z: ['z'] });
  });

  it('continues an execution whose row was written before 0010 (state at last_seq, no state_seq)', async () => {
    const env = environment(3);
    const name = await register(6);
    const { executionId } = await startExecution(db, env, { recipe: name, input: {} });
    assert.ok(await completeNext(env, executionId));
    assert.ok(await completeNext(env, executionId));
    // The row as the 0009 code left it: the whole state rewritten with every event.
    const plan = await plans.get(db, name, 1);
    const full = replay(await events(executionId), plan);
    await sql`DELETE FROM sous.execution_snapshot WHERE execution_id = ${executionId}`.execute(db);
    await sql`UPDATE sous.execution SET state = ${JSON.stringify(full)}::jsonb, state_seq = NULL, written_by = NULL
      WHERE id = ${executionId}`.execute(db);
    assert.deepEqual(await verifyExecution(db, plans, executionId), []);
    // A control plane that had it cached, and one that never saw it, both carry on.
    const fresh = environment(3);
    assert.ok(await completeNext(env, executionId));
    assert.ok(await completeNext(fresh, executionId));
    while (await completeNext(env, executionId));
    const end = await row(executionId);
    assert.equal(end.status, 'completed');
    assert.deepEqual(await verifyExecution(db, plans, executionId), []);
  });

  it('continues an execution whose row carries a snapshot written between 0010 and 0017, then moves it to its table', async () => {
    const env = environment(4);
    const name = await register(8);
    const { executionId } = await startExecution(db, env, { recipe: name, input: {} });
    assert.ok(await completeNext(env, executionId));
    assert.ok(await completeNext(env, executionId));
    // The row as the 0010-0016 code left it: a snapshot on the row at state_seq, a few events behind.
    const plan = await plans.get(db, name, 1);
    const log = await events(executionId);
    const stateSeq = log.length - 2;
    await sql`DELETE FROM sous.execution_snapshot WHERE execution_id = ${executionId}`.execute(db);
    await sql`UPDATE sous.execution SET state = ${JSON.stringify(replay(log.slice(0, stateSeq), plan))}::jsonb,
      state_seq = ${stateSeq}, written_by = NULL WHERE id = ${executionId}`.execute(db);
    assert.deepEqual(await verifyExecution(db, plans, executionId), []);
    assert.deepEqual((await currentStates(db, plans, [executionId])).get(executionId), replay(log, plan));
    // A control plane that never saw it carries on from the row's snapshot and, at the next
    // snapshot, moves it to sous.execution_snapshot and clears the row's.
    const fresh = environment(4);
    while (await completeNext(fresh, executionId));
    const end = await row(executionId);
    assert.equal(end.status, 'completed');
    assert.ok((end.state_seq ?? 0) > stateSeq, 'a newer snapshot was written');
    assert.equal((await snapshotRow(executionId))?.seq, end.state_seq);
    assert.equal(await rowState(executionId), null);
    assert.deepEqual(await verifyExecution(db, plans, executionId), []);
  });
});
