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
import { stackConfig, uniqueName } from '../helpers/stack.js';

/*
 * The execution state is a snapshot plus the event log (0010_state_snapshots.sql): the
 * row's state is written at start, every `snapshotEvery` events and at the end, and a
 * control plane's cached copy is used only while the row names the batch that cached it.
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
    const { rows } = await sql<{ data: EngineEvent }>`
      SELECT data FROM sous.execution_event WHERE execution_id = ${id} ORDER BY seq`.execute(db);
    return rows.map((r) => r.data);
  }

  it('writes the state at start, every N events and at the end; the snapshot and the log agree at every step', async () => {
    const env = environment(5);
    const name = await register(12);
    const { executionId } = await startExecution(db, env, { recipe: name, input: {} });
    const start = await row(executionId);
    assert.equal(start.state_seq, start.last_seq, 'a new execution stores its state');
    const snapshotsAt = new Set<number>();
    while (await completeNext(env, executionId)) {
      const now = await row(executionId);
      assert.ok(now.state_seq !== null);
      assert.ok(now.last_seq - now.state_seq < 5, `at most 4 events after the snapshot, got ${JSON.stringify(now)}`);
      snapshotsAt.add(now.state_seq);
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
    assert.equal(end.state_seq, end.last_seq, 'a finished execution stores its final state');
    // Not every decision wrote the state: far fewer snapshots than steps.
    assert.ok(snapshotsAt.size < 12 && snapshotsAt.size >= 3, `snapshots at ${[...snapshotsAt].join(',')}`);
    // Every decision but the first found its state cached.
    assert.equal(env.states.misses, 0);
    assert.ok(env.states.hits >= 12);
  });

  it('does not trust a state cached by a batch that rolled back when another process wrote the same seq', async () => {
    const name = await register(1);
    const a = environment();
    const b = environment();
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
    // The end writes A's state as the snapshot: it must be the log's (y then z, no x).
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
});
