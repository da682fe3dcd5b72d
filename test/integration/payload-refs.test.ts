// Claim check both ways on the real stack: a worker's output over the inline limit is
// stored through its payload store and replied by reference, the control plane reads it
// back for the next step's input, expressions and the execution's output; the next
// worker fetches that large input. The workers connect as a role that is a member of
// sous_payload_worker only: they never see the control plane's tables.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { z } from 'zod';
import { applyReplies, OUTPUT_UNAVAILABLE, parseReply } from '../../src/control-plane/apply-reply.js';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { migrateAll } from '../../src/db/migrate.js';
import { recipe } from '../../src/recipe/index.js';
import { databaseUrl } from '../../src/stack/config.js';
import {
  createCompletionClient,
  defineCapability,
  postgresPayloadStore,
  type PayloadStore,
} from '../../src/worker/index.js';
import { startTestControlPlane, waitForExecution } from '../helpers/control-plane.js';
import { capabilityName, workerHarness } from '../helpers/sdk-worker.js';
import { stackConfig, testResources, uniqueName } from '../helpers/stack.js';

const { db, kafka, cleanup } = testResources();
const { startWorker } = workerHarness(db, kafka, cleanup);
const superuser = () =>
  new pg.Client({ host: '127.0.0.1', port: stackConfig.pgPort, user: 'postgres', database: stackConfig.pgDatabase });
/** A worker's own login: a member of sous_payload_worker, nothing else. */
const workerRole = `sous_test_worker_${randomUUID().slice(0, 8)}`;
const workerUrl = `postgres://${workerRole}@127.0.0.1:${stackConfig.pgPort}/${stackConfig.pgDatabase}`;

before(async () => {
  await migrateAll(db, databaseUrl(stackConfig));
  const admin = superuser();
  await admin.connect();
  try {
    // The stack creates sous_payload_worker before migrating; a stack made before 0016 did not.
    await admin.query(`DO $$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sous_payload_worker') THEN
        CREATE ROLE sous_payload_worker NOLOGIN; END IF; END $$`);
    await admin.query('GRANT USAGE ON SCHEMA sous_payload TO sous_payload_worker');
    await admin.query('GRANT SELECT, INSERT ON sous_payload.payload TO sous_payload_worker');
    await admin.query(`CREATE ROLE ${workerRole} LOGIN IN ROLE sous_payload_worker`);
  } finally {
    await admin.end();
  }
});
after(async () => {
  const admin = superuser();
  await admin.connect();
  await admin.query(`DROP ROLE IF EXISTS ${workerRole}`);
  await admin.end();
});

describe('payloads by reference', () => {
  let cp: ControlPlane;
  let store: PayloadStore;

  before(async () => {
    cp = await startTestControlPlane();
    cleanup.push(() => cp.stop());
    store = postgresPayloadStore(workerUrl);
    cleanup.push(() => store.close());
  });

  it("gives the worker's role the payloads and nothing of the control plane", async () => {
    const client = new pg.Client({ connectionString: workerUrl });
    await client.connect();
    try {
      await assert.rejects(client.query('SELECT 1 FROM sous.execution LIMIT 1'), /permission denied/);
      await assert.rejects(client.query('DELETE FROM sous_payload.payload'), /permission denied/);
      await assert.rejects(client.query(`UPDATE sous_payload.payload SET bytes = 0`), /permission denied/);
      const ref = await store.store?.({ executionId: randomUUID(), json: '{"a":1}', bytes: 7 });
      assert.ok(ref !== undefined);
      assert.deepEqual(await store.fetch(ref), { a: 1 });
    } finally {
      await client.end();
    }
  });

  it('stores a large output by reference and fetches a large input, both through the store', async () => {
    const make = capabilityName('make');
    const use = capabilityName('use');
    const blob = 'x'.repeat(100_000);
    let received: string | undefined;
    await startWorker(
      [
        defineCapability({
          name: make,
          input: z.object({ n: z.number() }),
          output: z.object({ blob: z.string(), n: z.number() }),
          handler: async ({ n }) => ({ blob, n }),
        }),
        defineCapability({
          name: use,
          input: z.object({ blob: z.string(), n: z.number() }),
          output: z.object({ length: z.number() }),
          handler: async (input) => {
            received = input.blob;
            return { length: input.blob.length + input.n };
          },
        }),
      ],
      { payloadStore: store },
    );
    const name = uniqueName('payload-refs').toLowerCase();
    await cp.registerRecipe(
      recipe(name)
        .task('make', make, { input: { n: 'input.n' } })
        .task('use', use, { input: 'outputs.make' })
        .output('{ "length": outputs.use.length, "tail": $substring(outputs.make.blob, 99990), "made": outputs.make }')
        .build(),
    );
    const { executionId } = await cp.startExecution({ recipe: name, input: { n: 7 } });
    const view = await waitForExecution(cp, executionId);
    assert.equal(view.status, 'completed', JSON.stringify(view));
    assert.equal(received, blob, 'the second worker fetched its large input');
    const output = view.output as { length: number; tail: string; made: { blob: string; n: number } };
    assert.equal(output.length, 100_007, 'the expression read the stored output');
    assert.equal(output.tail, 'xxxxxxxxxx');
    assert.equal(output.made.blob.length, 100_000, "the execution's output holds the value, not the reference");

    // Two payloads: the first worker's output, then the second step's input, stored by the control plane.
    const { rows } = await sql<{ bytes: number }>`
      SELECT bytes FROM sous_payload.payload WHERE execution_id = ${executionId} ORDER BY created_at`.execute(db);
    assert.equal(rows.length, 2);
    for (const row of rows) assert.ok(row.bytes > 100_000);
    const { rows: steps } = await sql<{ step_key: string; output: { blob?: string } }>`
      SELECT step_key, output FROM sous.step WHERE execution_id = ${executionId} AND step_key = 'make'`.execute(db);
    assert.equal(steps[0]?.output.blob?.length, 100_000, 'the step shows its output');
  });

  it('keeps a small output inline', async () => {
    const small = capabilityName('small');
    await startWorker(
      [
        defineCapability({
          name: small,
          input: z.object({}),
          output: z.object({ ok: z.boolean() }),
          handler: async () => ({ ok: true }),
        }),
      ],
      { payloadStore: store },
    );
    const name = uniqueName('payload-small').toLowerCase();
    await cp.registerRecipe(recipe(name).task('small', small).build());
    const { executionId } = await cp.startExecution({ recipe: name, input: {} });
    assert.equal((await waitForExecution(cp, executionId)).status, 'completed');
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM sous_payload.payload WHERE execution_id = ${executionId}`.execute(db);
    assert.equal(rows[0]?.n, 0);
  });

  it('completes a deferred step with a large output by reference through the completion client', async () => {
    const later = capabilityName('later');
    let token: string | undefined;
    await startWorker(
      [
        defineCapability({
          name: later,
          input: z.object({}),
          output: z.object({ blob: z.string() }),
          handler: async (_input, ctx) => {
            token = ctx.deferCompletion();
            return { blob: '' };
          },
        }),
      ],
      { payloadStore: store },
    );
    const name = uniqueName('payload-deferred').toLowerCase();
    await cp.registerRecipe(recipe(name).task('later', later).output('$length(outputs.later.blob)').build());
    const { executionId } = await cp.startExecution({ recipe: name, input: {} });
    await waitForExecution(cp, executionId, () => token !== undefined);
    const client = createCompletionClient({ kafka, payloadStore: store });
    cleanup.push(() => client.close());
    await client.completeStep(token ?? '', { blob: 'y'.repeat(80_000) });
    const view = await waitForExecution(cp, executionId);
    assert.deepEqual([view.status, view.output], ['completed', 80_000]);
    const { rows } = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM sous_payload.payload WHERE execution_id = ${executionId}`.execute(db);
    assert.equal(rows[0]?.n, 1, 'the output went by reference');
  });

  it('fails the attempt, retryable, when an output reference names no payload', async () => {
    const name = uniqueName('payload-missing').toLowerCase();
    await cp.registerRecipe(recipe(name).task('lost', capabilityName('nobody')).build());
    const { executionId } = await cp.startExecution({ recipe: name, input: {} });
    const { rows } = await sql<{ id: string }>`
      SELECT id FROM sous.step_attempt WHERE execution_id = ${executionId}`.execute(db);
    const attempt = rows[0]?.id;
    assert.ok(attempt !== undefined);
    const reply = parseReply({
      kind: 'step.completed',
      messageId: randomUUID(),
      executionId,
      stepExecutionId: attempt,
      workerId: 'w',
      at: new Date().toISOString(),
      outputRef: { ref: randomUUID(), bytes: 100_000 },
    });
    await applyReplies(cp.db, cp.environment, [reply]);
    const { rows: attempts } = await sql<{ status: string; error: { code: string; retryable: boolean } }>`
      SELECT status, error FROM sous.step_attempt WHERE id = ${attempt}`.execute(db);
    assert.equal(attempts[0]?.status, 'failed');
    assert.deepEqual([attempts[0].error.code, attempts[0].error.retryable], [OUTPUT_UNAVAILABLE, true]);
    await cp.cancelExecution(executionId);
  });
});
