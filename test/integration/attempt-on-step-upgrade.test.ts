// 0022 moves each step's current attempt onto its step row; 0023 appends events in
// batches. An execution written by the schema before both (0021), with a step in flight,
// completes after the upgrade, and its rows agree with its event log, which spans both.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { applyReplies, type ReplyTopicMessage } from '../../src/control-plane/apply-reply.js';
import { startExecution } from '../../src/control-plane/executions.js';
import { PlanCache } from '../../src/control-plane/plan-cache.js';
import { registerRecipe } from '../../src/control-plane/recipes.js';
import { defaultDecisionEnvironment } from '../../src/control-plane/run-decision.js';
import { verifyExecution } from '../../src/control-plane/verify.js';
import { createDatabase } from '../../src/db/database.js';
import { MIGRATIONS_FOLDER, migrate, migrateAll } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { recipe } from '../../src/recipe/index.js';
import { databaseUrl } from '../../src/stack/config.js';
import { completedReply, scheduledAttempts } from '../helpers/replies.js';
import { stackConfig, uniqueName } from '../helpers/stack.js';

const legacyName = uniqueName('sous_test_upgrade_0022').replaceAll('-', '_');
const admin = new pg.Client({ host: '127.0.0.1', port: stackConfig.pgPort, user: 'postgres', database: 'postgres' });
const legacyUrl = `postgres://${stackConfig.pgUser}@127.0.0.1:${stackConfig.pgPort}/${legacyName}`;

/** The attempts of executions as sous.step_attempt shows them, comparable across layouts. */
async function attemptsOf(db: Kysely<Database>, ids: readonly string[]) {
  const { rows } = await sql<Record<string, unknown>>`
    SELECT id, execution_id, step_key, attempt, capability, region, status, worker_id, error,
      scheduled_at, started_at, finished_at, last_heartbeat_at
    FROM sous.step_attempt WHERE execution_id = ANY(${[...ids]}::uuid[]) ORDER BY step_key, attempt`.execute(db);
  return rows;
}

describe("0022: a step's current attempt on its row, across the upgrade", () => {
  let current: Kysely<Database>;
  let legacy: Kysely<Database>;

  before(async () => {
    await admin.connect();
    await admin.query(
      `CREATE DATABASE ${pg.escapeIdentifier(legacyName)} OWNER ${pg.escapeIdentifier(stackConfig.pgUser)}`,
    );
    current = createDatabase({ connectionString: databaseUrl(stackConfig), poolSize: 2 });
    await migrateAll(current, databaseUrl(stackConfig));
    legacy = createDatabase({ connectionString: legacyUrl, poolSize: 2 });
    // The schema as it was before 0022.
    const before0022 = mkdtempSync(join(tmpdir(), 'sous-migrations-0021-'));
    for (const file of readdirSync(MIGRATIONS_FOLDER).filter((f) => /^\d{4}_.+\.sql$/.test(f) && f < '0022'))
      copyFileSync(join(MIGRATIONS_FOLDER, file), join(before0022, file));
    await migrate(legacy, before0022);
  });
  after(async () => {
    await current.destroy();
    await legacy.destroy();
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(legacyName)} WITH (FORCE)`);
    await admin.end();
  });

  const reply = (db: Kysely<Database>, executionId: string) => async (): Promise<ReplyTopicMessage[]> =>
    (await scheduledAttempts(db, [executionId])).map((a) => completedReply(a, { done: a.id }));

  it("moves each step's latest attempt onto its row, and an execution in flight completes after it", async () => {
    const env = defaultDecisionEnvironment(new PlanCache(), { replyTopic: uniqueName('test.replies') });
    const plan = recipe(uniqueName('upgrade').toLowerCase())
      .task('s0', 'upgrade.step')
      .task('s1', 'upgrade.step')
      .task('s2', 'upgrade.step')
      .build();
    await registerRecipe(current, plan);
    const { executionId } = await startExecution(current, env, { recipe: plan.name, input: {} });
    await applyReplies(current, env, await reply(current, executionId)());

    // The execution as the schema before 0022 held it: s0 finished, s1 in flight, every
    // attempt in the attempt table.
    const copy = async (table: string, where: string) => {
      const { rows } = await sql<{ row: unknown }>`SELECT row_to_json(t) AS row FROM ${sql.raw(table)} AS t
        WHERE ${sql.raw(where)} = ${executionId}`.execute(current);
      for (const { row } of rows)
        await sql`INSERT INTO ${sql.raw(table)} SELECT * FROM json_populate_record(NULL::${sql.raw(table)},
          ${JSON.stringify(row)}::json)`.execute(legacy);
    };
    await sql`INSERT INTO sous.recipe SELECT * FROM json_populate_record(NULL::sous.recipe, (
      ${JSON.stringify(
        (
          await sql<{ row: unknown }>`SELECT row_to_json(r) AS row FROM sous.recipe r
        WHERE name = ${plan.name}`.execute(current)
        ).rows[0]?.row,
      )}::json))`.execute(legacy);
    await copy('sous.execution', 'id');
    await copy('sous.execution_event', 'execution_id');
    await copy('sous.step', 'execution_id');
    const attemptsBefore = await attemptsOf(current, [executionId]);
    assert.equal(attemptsBefore.length, 2);
    for (const a of attemptsBefore)
      await sql`INSERT INTO sous.step_attempt SELECT * FROM json_populate_record(NULL::sous.step_attempt,
        ${JSON.stringify(a)}::json)`.execute(legacy);

    // A step of another execution retried once: attempt 1 failed, attempt 2 running.
    const retried = randomUUID();
    await sql`INSERT INTO sous.step (execution_id, step_key, step_id, compensation, kind, status, attempts, created_at,
        updated_at) VALUES (${retried}, 'r', 'r', false, 'task', 'running', 2, now(), now())`.execute(legacy);
    const [first, second] = [randomUUID(), randomUUID()];
    await sql`INSERT INTO sous.step_attempt (id, execution_id, step_key, attempt, capability, status, worker_id, error,
        scheduled_at, started_at, finished_at)
      VALUES (${first}, ${retried}, 'r', 1, 'upgrade.step', 'failed', 'w0', '{"code": "boom"}',
          now() - interval '1 minute', now() - interval '59 seconds', now() - interval '58 seconds'),
        (${second}, ${retried}, 'r', 2, 'upgrade.step', 'running', 'w1', NULL, now() - interval '10 seconds',
          now() - interval '9 seconds', NULL)`.execute(legacy);
    const retriedBefore = await attemptsOf(legacy, [retried]);

    // 0022 and every migration after it (0023 moves new events to batches).
    assert.deepEqual((await migrate(legacy)).slice(0, 2), ['0022_attempt_on_step_row', '0023_event_batches']);

    // Every attempt reads as it did; each step's latest is on its row, the earlier superseded.
    assert.deepEqual(await attemptsOf(legacy, [executionId]), attemptsBefore);
    assert.deepEqual(await attemptsOf(legacy, [retried]), retriedBefore);
    const onRows = await sql<{ step_key: string; attempt_id: string | null }>`SELECT step_key, attempt_id
      FROM sous.step WHERE execution_id = ANY(${[executionId, retried]}::uuid[]) ORDER BY step_key`.execute(legacy);
    const byKey = new Map(attemptsBefore.map((a) => [a.step_key, a.id]));
    assert.deepEqual(onRows.rows, [
      { step_key: 'r', attempt_id: second },
      { step_key: 's0', attempt_id: byKey.get('s0') },
      { step_key: 's1', attempt_id: byKey.get('s1') },
    ]);
    const superseded = await sql<{ id: string }>`SELECT id FROM sous.superseded_attempt
      WHERE execution_id = ANY(${[executionId, retried]}::uuid[])`.execute(legacy);
    assert.deepEqual(superseded.rows, [{ id: first }]);

    // The execution goes on: s1's reply finishes the attempt that was in flight.
    const legacyEnv = defaultDecisionEnvironment(new PlanCache(), { replyTopic: uniqueName('test.replies') });
    for (let i = 0; i < 2; i++) {
      const batch = await reply(legacy, executionId)();
      assert.equal(batch.length, 1);
      assert.deepEqual(await applyReplies(legacy, legacyEnv, batch), { applied: 1, duplicates: 0, unknown: [] });
    }
    const status = await sql<{ status: string }>`SELECT status FROM sous.execution WHERE id = ${executionId}`.execute(
      legacy,
    );
    assert.equal(status.rows[0]?.status, 'completed');
    assert.deepEqual(await verifyExecution(legacy, legacyEnv.plans, executionId), []);
    // Its log spans the upgrade: the events from before one per row, those after in batches (0023).
    const log = await sql<{ rows: number; batches: number; events: number; last_seq: number }>`SELECT
        (SELECT count(*)::int FROM sous.execution_event_row WHERE execution_id = ${executionId}) AS rows,
        (SELECT count(*)::int FROM sous.execution_event_batch WHERE execution_id = ${executionId}) AS batches,
        (SELECT count(*)::int FROM sous.execution_event WHERE execution_id = ${executionId}) AS events,
        (SELECT last_seq FROM sous.execution WHERE id = ${executionId}) AS last_seq`.execute(legacy);
    const spans = log.rows[0];
    assert.ok(spans !== undefined && spans.rows > 0 && spans.batches === 2, JSON.stringify(spans));
    assert.equal(spans.events, spans.last_seq, 'every seq once');
    const attempts = await attemptsOf(legacy, [executionId]);
    assert.deepEqual(
      attempts.map((a) => [a.step_key, a.status]),
      [
        ['s0', 'completed'],
        ['s1', 'completed'],
        ['s2', 'completed'],
      ],
    );
  });
});
