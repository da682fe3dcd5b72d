import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { sql, type Kysely } from 'kysely';
import { startExecution } from '../../src/control-plane/executions.js';
import { PlanCache } from '../../src/control-plane/plan-cache.js';
import { registerRecipe } from '../../src/control-plane/recipes.js';
import { defaultDecisionEnvironment } from '../../src/control-plane/run-decision.js';
import { verifyExecution } from '../../src/control-plane/verify.js';
import { createDatabase } from '../../src/db/database.js';
import { migrateAll } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import type { EngineEvent } from '../../src/engine/events.js';
import { recipe } from '../../src/recipe/index.js';
import { databaseUrl } from '../../src/stack/config.js';
import { appendEvents, selectEvents } from '../../src/store/events.js';
import { selectStateSnapshots } from '../../src/store/executions.js';
import { selectAttemptNodes, selectEventNodes } from '../../src/store/read-model.js';
import { stackConfig, uniqueName } from '../helpers/stack.js';

/*
 * The event log stores `type` and `at` in their columns only (store/events.ts): what is
 * read back, by every reader, is exactly what was written, and rows written before (with
 * both in `data`) read as they did.
 */

const RUNS = Number(process.env.SOUS_PROPERTY_RUNS ?? 100);
const SEED = Number(process.env.SOUS_PROPERTY_SEED ?? Date.now() % 2 ** 31);

/** Text jsonb can hold (no NUL). */
const text = fc.string({ maxLength: 12 }).map((s) => s.replaceAll('\u0000', ''));
const leaf = fc.oneof(
  fc.integer(),
  fc.boolean(),
  text,
  fc.constant(null),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0)),
);
const value = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    leaf,
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(text, tie('value'), { maxKeys: 3 }),
  ),
})).value;
const instant = fc.date({
  min: new Date('2000-01-01T00:00:00Z'),
  max: new Date('2100-01-01T00:00:00Z'),
  noInvalidDate: true,
});
/** `at` as the engine writes it, and in forms a hand-made or foreign event might carry. */
const at = fc.oneof(
  instant.map((d) => d.toISOString()),
  instant.map((d) => d.toISOString().replace('Z', '+00:00')),
  instant.map((d) => `${d.toISOString().slice(0, 19)}Z`),
);
const event = fc
  .record({
    type: fc.constantFrom('StepScheduled', 'StepCompleted', 'SignalReceived', 'ExecutionPaused'),
    at,
    fields: fc.dictionary(
      text.filter((k) => k !== 'type' && k !== 'at'),
      value,
      { maxKeys: 5 },
    ),
  })
  .map(({ type, at: when, fields }) => ({ ...fields, type, at: when }) as unknown as EngineEvent);

describe('the event log stores type and at once', () => {
  let db: Kysely<Database>;
  const env = defaultDecisionEnvironment(new PlanCache(), { replyTopic: uniqueName('test.replies') });
  let recipeName: string;

  before(async () => {
    db = createDatabase({
      connectionString: databaseUrl(stackConfig),
      poolSize: 2,
      applicationName: 'sous-test-events',
    });
    await migrateAll(db, databaseUrl(stackConfig));
    recipeName = uniqueName('event-storage').toLowerCase();
    await registerRecipe(db, recipe(recipeName).task('a', 'events.step').build());
  });
  after(() => db.destroy());

  async function storedRows(executionId: string) {
    const { rows } = await sql<{ seq: number; type: string; data: Record<string, unknown>; created_at: Date }>`
      SELECT seq, type, data, created_at FROM sous.execution_event WHERE execution_id = ${executionId} ORDER BY seq`.execute(
      db,
    );
    return rows;
  }

  it('an execution the engine writes: data holds neither, every reader gives the events back, verify agrees', async () => {
    const { executionId } = await startExecution(db, env, { recipe: recipeName, input: { n: 1 } });
    const rows = await storedRows(executionId);
    assert.ok(rows.length >= 2);
    for (const row of rows) {
      assert.equal('type' in row.data, false, `seq ${row.seq} stores type in data`);
      assert.equal('at' in row.data, false, `seq ${row.seq} stores at in data`);
    }
    const events = await selectEvents(db, executionId);
    assert.deepEqual(
      events.map((e) => e.type),
      rows.map((r) => r.type),
    );
    for (const [i, e] of events.entries()) assert.equal(e.at, rows[i]?.created_at.toISOString());
    // The decision path's read (snapshot + events after it) and the API's give the same events.
    const snapshot = (await selectStateSnapshots(db, [executionId])).get(executionId);
    assert.deepEqual(snapshot?.events, events);
    const nodes = await selectEventNodes<{ seq: number; data: unknown }>(db, [executionId], 0);
    assert.deepEqual(
      nodes.map((n) => n.data),
      events,
    );
    assert.deepEqual(await verifyExecution(db, env.plans, executionId), []);
  });

  it(`any event reads back exactly as written (${RUNS} generated batches, seed ${SEED})`, async () => {
    const { executionId } = await startExecution(db, env, { recipe: recipeName, input: {} });
    let seq = (await storedRows(executionId)).length;
    await fc.assert(
      fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 4 }), async (batch) => {
        const firstSeq = seq + 1;
        await appendEvents(db, [{ executionId, firstSeq, events: batch }]);
        seq += batch.length;
        const back = (await selectEvents(db, executionId)).slice(firstSeq - 1);
        assert.deepEqual(back, JSON.parse(JSON.stringify(batch)));
        const nodes = await selectEventNodes<{ seq: number; data: unknown }>(db, [executionId], firstSeq - 1);
        assert.deepEqual(
          nodes.map((n) => n.data),
          back,
        );
        // One row for the batch (0023), at the first event's instant, whatever the form of its
        // `at`; the view shows a row per event, each with its type.
        const stored = await sql<{ first_seq: number; last_seq: number; created_at: Date }>`
          SELECT first_seq, last_seq, created_at FROM sous.execution_event_batch
          WHERE execution_id = ${executionId} AND last_seq = ${seq}`.execute(db);
        assert.deepEqual(
          stored.rows.map((r) => [r.first_seq, r.last_seq, r.created_at.getTime()]),
          [[firstSeq, seq, Date.parse(batch[0]?.at ?? '')]],
        );
        const rows = (await storedRows(executionId)).slice(firstSeq - 1);
        assert.deepEqual(
          rows.map((r) => [r.seq, r.type]),
          batch.map((e, i) => [firstSeq + i, e.type]),
        );
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('a row written before (type and at in data as well) reads as it did', async () => {
    const { executionId } = await startExecution(db, env, { recipe: recipeName, input: {} });
    const seq = (await storedRows(executionId)).length + 1;
    const legacy = { type: 'SignalReceived', at: '2026-11-01T10:00:00.123Z', name: 'go', payload: { x: 1 } };
    await sql`INSERT INTO sous.execution_event_row (execution_id, seq, type, data, created_at)
      VALUES (${executionId}, ${seq}, ${legacy.type}, ${JSON.stringify(legacy)}::jsonb, ${legacy.at}::timestamptz)`.execute(
      db,
    );
    const back = (await selectEvents(db, executionId)).at(-1);
    assert.deepEqual(back, legacy);
  });

  it('a log that spans the upgrade (rows before 0023, batches after) reads in seq order by every reader', async () => {
    const executionId = randomUUID();
    const at = (s: number) => new Date(Date.UTC(2026, 10, 1, 10, 0, s)).toISOString();
    // Seqs 1-2 one per row, as releases before 0023 wrote them (type and at in columns only).
    for (const seq of [1, 2])
      await sql`INSERT INTO sous.execution_event_row (execution_id, seq, type, data, created_at)
        VALUES (${executionId}, ${seq}, 'SignalReceived', ${JSON.stringify({ name: `s${seq}` })}::json, ${at(seq)})`.execute(
        db,
      );
    // Seqs 3-4 one batch, 4 at a time of its own; 5 a batch alone.
    const later = [3, 4, 5].map((seq) => ({ type: 'SignalReceived', at: at(seq), name: `s${seq}` }));
    await appendEvents(db, [{ executionId, firstSeq: 3, events: later.slice(0, 2) as unknown as EngineEvent[] }]);
    await appendEvents(db, [{ executionId, firstSeq: 5, events: later.slice(2) as unknown as EngineEvent[] }]);
    const all = [1, 2].map((seq) => ({ type: 'SignalReceived', at: at(seq), name: `s${seq}` })).concat(later);
    assert.deepEqual(await selectEvents(db, executionId), all);
    const nodes = await selectEventNodes<{ seq: number; at: Date; data: unknown }>(db, [executionId], 1);
    assert.deepEqual(
      nodes.map((n) => [n.seq, n.at.toISOString(), n.data]),
      all.slice(1).map((e, i) => [i + 2, e.at, e]),
    );
    // A window inside a batch gives that window only.
    const { rows } = await sql<{ seq: number }>`SELECT seq FROM sous.execution_events(${executionId}, 3, 4)`.execute(
      db,
    );
    assert.deepEqual(
      rows.map((r) => r.seq),
      [4],
    );
    // The view: a row per event; data without the type, and with the time only where the row's is not the event's.
    assert.deepEqual(
      (await storedRows(executionId)).map((r) => [r.seq, r.created_at.toISOString(), r.data]),
      all.map((e, i) => [i + 1, i === 3 ? at(3) : e.at, i === 3 ? { at: e.at, name: e.name } : { name: e.name }]),
    );
  });

  it('finds the batches that hold a window through the primary key, not by unnesting the history', async () => {
    const executionId = randomUUID();
    const signal = { type: 'SignalReceived', at: new Date().toISOString(), name: 'x' } as unknown as EngineEvent;
    for (let firstSeq = 1; firstSeq <= 400; firstSeq += 2)
      await appendEvents(db, [{ executionId, firstSeq, events: [signal, signal] }]);
    await sql`ANALYZE sous.execution_event_batch`.execute(db);
    const { rows } = await sql<{ 'QUERY PLAN': unknown }>`EXPLAIN (ANALYZE, FORMAT JSON, COSTS OFF, TIMING OFF)
      SELECT * FROM sous.execution_events(${executionId}, 396, 400)`.execute(db);
    const plan = JSON.stringify(rows[0]?.['QUERY PLAN']);
    assert.match(plan, /execution_event_batch_pkey/);
    assert.match(plan, /last_seq > 396/);
    // Of 200 batches, the two that hold seqs 397-400 are read.
    const scans = [...plan.matchAll(/"Relation Name":"execution_event_batch"[^}]*?"Actual Rows":(\d+)/g)];
    assert.deepEqual(
      scans.map((m) => Number(m[1])),
      [2],
    );
  });

  it("an attempt row holds no input: the API reads it from the attempt's StepScheduled event", async () => {
    const mapped = `${recipeName}-mapped`;
    await registerRecipe(
      db,
      recipe(mapped)
        .task('a', 'events.step', { input: { n: 'input.n' } })
        .build(),
    );
    const { executionId } = await startExecution(db, env, { recipe: mapped, input: { n: 7 } });
    const { rows } = await sql<{ id: string; input: unknown }>`
      SELECT id, input FROM sous.step_attempt WHERE execution_id = ${executionId}`.execute(db);
    assert.deepEqual(
      rows.map((r) => r.input),
      [null],
    );
    type Node = { id: string; stepKey: string; input: unknown };
    const [node] = await selectAttemptNodes<Node>(db, [executionId]);
    assert.deepEqual(
      { id: node?.id, stepKey: node?.stepKey, input: node?.input },
      {
        id: rows[0]?.id,
        stepKey: 'a',
        input: { n: 7 },
      },
    );
    // A row written by an earlier release keeps its own input, which wins (such rows are
    // superseded attempts since 0022: the migration moved only the columns a step row has).
    await sql`INSERT INTO sous.superseded_attempt (id, execution_id, step_key, attempt, capability, input, status,
        scheduled_at)
      SELECT id, execution_id, step_key, attempt, capability, '{"n": 8}'::jsonb, status, scheduled_at
      FROM sous.step_attempt WHERE execution_id = ${executionId}`.execute(db);
    await sql`UPDATE sous.step SET attempt_id = NULL WHERE execution_id = ${executionId}`.execute(db);
    assert.deepEqual((await selectAttemptNodes<Node>(db, [executionId]))[0]?.input, { n: 8 });
  });

  it('without foreign keys (0020), verify reports a step or attempt row the log does not explain', async () => {
    const { executionId } = await startExecution(db, env, { recipe: recipeName, input: {} });
    assert.deepEqual(await verifyExecution(db, env.plans, executionId), []);
    const orphan = randomUUID();
    await sql`INSERT INTO sous.superseded_attempt (id, execution_id, step_key, attempt, capability, status, scheduled_at)
      VALUES (${orphan}, ${executionId}, 'nowhere', 1, 'events.step', 'scheduled', now())`.execute(db);
    await sql`INSERT INTO sous.step (execution_id, step_key, step_id, compensation, kind, status, attempts, created_at, updated_at)
      VALUES (${executionId}, 'ghost', 'ghost', false, 'task', 'pending', 0, now(), now())`.execute(db);
    const found = await verifyExecution(db, env.plans, executionId);
    assert.ok(
      found.some((d) => d.table === 'step_attempt' && d.key === orphan && d.column === '(row)'),
      JSON.stringify(found),
    );
    assert.ok(
      found.some((d) => d.table === 'step' && d.key === 'ghost' && d.column === '(row)'),
      JSON.stringify(found),
    );
  });
});
