import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import { applyReplies, parseReply } from '../../src/control-plane/apply-reply.js';
import { childFinishedMessage } from '../../src/control-plane/command-message.js';
import { signalExecution, startExecution } from '../../src/control-plane/executions.js';
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
 * Versions stay what they were when an execution started: its own recipe's, and those of
 * the sub-recipes its steps name without a version, whatever is registered meanwhile.
 * Against a real PostgreSQL, without Kafka: replies are applied as the consumer would.
 */

describe('version pinning', () => {
  let db: Kysely<Database>;
  const env = defaultDecisionEnvironment(new PlanCache(), { replyTopic: uniqueName('test.replies') });

  before(async () => {
    db = createDatabase({ connectionString: databaseUrl(stackConfig), poolSize: 2, applicationName: 'sous-test-pin' });
    await migrateAll(db, databaseUrl(stackConfig));
  });
  after(() => db.destroy());

  async function row(id: string) {
    const { rows } = await sql<{ recipe_version: number; status: string; output: unknown }>`
      SELECT recipe_version, status, output FROM sous.execution WHERE id = ${id}`.execute(db);
    assert.ok(rows[0] !== undefined);
    return rows[0];
  }

  async function completeScheduled(executionId: string, output: unknown): Promise<string[]> {
    const attempts = await scheduledAttempts(db, [executionId]);
    await applyReplies(
      db,
      env,
      attempts.map((a) => completedReply(a, output)),
    );
    return attempts.map((a) => a.step_key);
  }

  it('runs the sub-recipe version of when the parent started, and the parent on its own version', async () => {
    const child = uniqueName('pin-child').toLowerCase();
    const parent = uniqueName('pin-parent').toLowerCase();
    assert.equal((await registerRecipe(db, recipe(child).task('v1step', 'pin.step').build())).version, 1);
    const parentV1 = recipe(parent)
      .waitForSignal('go', { signal: 'go' })
      .subRecipe('sub', child)
      .output('{ "sub": outputs.sub }')
      .build();
    assert.equal((await registerRecipe(db, parentV1)).version, 1);
    const { executionId } = await startExecution(db, env, { recipe: parent, input: {} });

    // New versions of both while the parent waits.
    assert.equal((await registerRecipe(db, recipe(child).task('v2step', 'pin.step').build())).version, 2);
    const parentV2 = recipe(parent).task('first', 'pin.step').subRecipe('sub', child).build();
    assert.equal((await registerRecipe(db, parentV2)).version, 2);

    await signalExecution(db, env, executionId, 'go', null);
    const { rows: children } = await sql<{ id: string; recipe_version: number }>`
      SELECT id, recipe_version FROM sous.execution WHERE parent_execution_id = ${executionId}`.execute(db);
    assert.equal(children.length, 1);
    const [started] = children;
    assert.ok(started !== undefined);
    assert.equal(started.recipe_version, 1, 'the child runs the version of when its parent started');
    assert.deepEqual(await completeScheduled(started.id, { v: 1 }), ['v1step']);
    assert.equal((await row(started.id)).status, 'completed');

    // The child's word to its parent, as its reply topic carries it.
    const finished = childFinishedMessage('unused', executionId, started.id, 'completed', { v: 1 }, undefined, null);
    await applyReplies(db, env, [parseReply(JSON.parse(finished.payload))]);
    const done = await row(executionId);
    assert.deepEqual(done, { recipe_version: 1, status: 'completed', output: { sub: { v: 1 } } });
    assert.deepEqual(await verifyExecution(db, env.plans, executionId), []);

    // A parent started now pins the newest child.
    const later = await startExecution(db, env, { recipe: parent, version: 1, input: {} });
    await signalExecution(db, env, later.executionId, 'go', null);
    const { rows: next } = await sql<{ recipe_version: number }>`
      SELECT recipe_version FROM sous.execution WHERE parent_execution_id = ${later.executionId}`.execute(db);
    assert.deepEqual(
      next.map((r) => r.recipe_version),
      [2],
    );
  });
});
