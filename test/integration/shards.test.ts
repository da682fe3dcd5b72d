// The shard registry on the real stack: residency, health ordering, visible waits for a
// shard, contract versions, drain mid-run, and a SIGKILLed shard leaving the view while
// its commands run elsewhere. Each test has its own capabilities and consumer groups.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { z } from 'zod';
import { createApiToken } from '../../src/api/auth.js';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { recipe } from '../../src/recipe/index.js';
import { kafkaBrokers } from '../../src/stack/config.js';
import { createWorker } from '../../src/worker/create-worker.js';
import { defineCapability, type Worker } from '../../src/worker/index.js';
import { serveTestApi } from '../helpers/api.js';
import { startTestControlPlane, waitForExecution } from '../helpers/control-plane.js';
import { stackConfig, testKafka, uniqueName } from '../helpers/stack.js';

const kafka = testKafka();
const ns = uniqueName('sh').replaceAll('-', '');
const cap = (name: string) => `test${ns}.${name}`;
const cleanup: (() => Promise<unknown>)[] = [];
let cp: ControlPlane & { replyTopic: string };
let url: string;
let token: string;

/** What each shard ran: capability, item index (or -1) and when it began. */
const runs: { shard: string; capability: string; item: number; at: number }[] = [];

before(async () => {
  cp = await startTestControlPlane({ shardTimeoutMs: 3_000, waitingSweepMs: 500 });
  cleanup.push(() => cp.stop());
  url = await serveTestApi(cp, cleanup);
  token = (await createApiToken(cp.db, uniqueName('test-operator'), 'operator', 'shards.test')).token;
});

after(async () => {
  for (const step of cleanup.reverse()) await step();
});

async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data: T; errors?: unknown[] };
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

interface ShardOptions {
  readonly id: string;
  readonly group: string;
  readonly region?: string;
  readonly version?: number;
  readonly concurrency?: number;
  readonly holdMs?: number;
}

async function startShard(capability: string, o: ShardOptions): Promise<Worker> {
  const worker = createWorker({
    kafka,
    capabilities: [
      defineCapability({
        name: capability,
        version: o.version ?? 1,
        input: z.object({ item: z.number().optional() }),
        output: z.object({ shard: z.string() }),
        handler: async ({ item }) => {
          runs.push({ shard: o.id, capability, item: item ?? -1, at: Date.now() });
          await sleep(o.holdMs ?? 0);
          return { shard: o.id };
        },
      }),
    ],
    groupId: o.group,
    workerId: o.id,
    ...(o.region === undefined ? {} : { region: o.region }),
    concurrency: o.concurrency ?? 5,
    heartbeatIntervalMs: 500,
    sessionTimeoutMs: 6_000,
    handleSignals: false,
  });
  await worker.start();
  cleanup.push(() => worker.stop());
  return worker;
}

/** The shard of each attempt of an execution that completed, by step key. */
async function shardsOf(executionId: string): Promise<Map<string, string | null>> {
  const rows = await cp.db
    .selectFrom('sous.step_attempt')
    .select(['step_key', 'worker_id'])
    .where('execution_id', '=', executionId)
    .where('status', '=', 'completed')
    .execute();
  return new Map(rows.map((r) => [r.step_key, r.worker_id]));
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const forEachRecipe = (name: string, capability: string, items: number, concurrency: number, region?: string) =>
  recipe(`${ns}.${name}`)
    .forEach('each', { items: `[1..${items}]`, concurrency }, (body) =>
      body.task('run', capability, { input: { item: 'item' }, ...(region === undefined ? {} : { region }) }),
    )
    .build();

describe('shard registry', () => {
  it('keeps a step with a region on that region’s shards, even when only other regions’ shards are idle', async () => {
    const capability = cap('resident');
    const group = uniqueName('test-shards');
    await startShard(capability, { id: uniqueName('eu'), group, region: 'eu-west', concurrency: 1, holdMs: 200 });
    await startShard(capability, { id: uniqueName('us'), group, region: 'us-east', concurrency: 5 });
    const plan = forEachRecipe('resident', capability, 6, 6, 'eu-west');
    await cp.registerRecipe(plan);
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: {} });
    await waitForExecution(cp, executionId, (v) => v.status === 'completed');
    const ran = runs.filter((r) => r.capability === capability);
    assert.equal(ran.length, 6);
    assert.ok(
      ran.every((r) => r.shard.startsWith('eu')),
      `every item on the eu-west shard: ${JSON.stringify(ran)}`,
    );
    const attempts = await shardsOf(executionId);
    assert.ok(
      [...attempts.values()].every((s) => s?.startsWith('eu') === true),
      JSON.stringify([...attempts]),
    );
  });

  it('prefers healthy shards over degraded ones, and falls back to a degraded one when it is all there is', async () => {
    const capability = cap('health');
    const group = uniqueName('test-shards');
    const healthy = await startShard(capability, { id: uniqueName('healthy'), group });
    const degraded = await startShard(capability, { id: uniqueName('degraded'), group });
    await degraded.setHealth('degraded', 'its database is slow');
    // The degraded member rejoined; give the group its rebalance.
    await sleep(3_000);
    const listed = await gql<{ shards: { id: string; health: string; reason: string | null }[] }>(
      `query($c: String) { shards(filter: { capability: $c }) { id health reason } }`,
      { c: capability },
    );
    assert.deepEqual(
      listed.shards.map((s) => [s.id === degraded.workerId ? 'degraded' : 'healthy', s.health, s.reason]).sort(),
      [
        ['degraded', 'DEGRADED', 'its database is slow'],
        ['healthy', 'HEALTHY', null],
      ],
    );
    const plan = forEachRecipe('health', capability, 12, 12);
    await cp.registerRecipe(plan);
    const first = await cp.startExecution({ recipe: plan.name, input: {} });
    await waitForExecution(cp, first.executionId, (v) => v.status === 'completed');
    const ranFirst = runs.filter((r) => r.capability === capability);
    assert.equal(ranFirst.length, 12);
    assert.ok(
      ranFirst.every((r) => r.shard === healthy.workerId),
      `all on the healthy shard: ${JSON.stringify(ranFirst.map((r) => r.shard))}`,
    );
    // The healthy shard goes: the degraded one is all there is, so it takes the work.
    await healthy.stop();
    const second = await cp.startExecution({ recipe: plan.name, input: {} });
    await waitForExecution(cp, second.executionId, (v) => v.status === 'completed', 60_000);
    const ranSecond = runs.filter((r) => r.capability === capability).slice(12);
    assert.ok(ranSecond.length >= 12);
    assert.ok(ranSecond.every((r) => r.shard === degraded.workerId));
  });

  it('holds a step no shard can take, visibly, and sends it as soon as a capable shard appears', async () => {
    const capability = cap('late');
    const plan = recipe(`${ns}.late`)
      .task('only', capability, { input: { item: '1' } })
      .build();
    await cp.registerRecipe(plan);
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: {} });
    const query = `query($id: ID!) { execution(id: $id) { status steps { key status waitingForShard { code reason } } } }`;
    type Data = {
      execution: { status: string; steps: { key: string; waitingForShard: { code: string; reason: string } | null }[] };
    };
    const waiting = await until('the wait to show', async () => {
      const data = await gql<Data>(query, { id: executionId });
      return data.execution.steps.find((s) => s.waitingForShard !== null)?.waitingForShard ?? undefined;
    });
    assert.equal(waiting.code, 'no_shard');
    assert.match(waiting.reason, new RegExp(`no shard serves ${capability.replace('.', '\\.')}`));
    // reporting_v3 names the reason once the execution counts as stuck.
    const stuck = await cp.db.transaction().execute(async (trx) => {
      await sql`SET LOCAL sous.stuck_after = '0 seconds'`.execute(trx);
      return sql<{ reason: string; waiting_on: string[]; wait_reasons: string[] }>`
        SELECT reason, waiting_on, wait_reasons FROM reporting_v3.stuck_executions WHERE execution_id = ${executionId}`.execute(
        trx,
      );
    });
    const [row] = stuck.rows;
    assert.ok(row !== undefined, 'the execution is listed as stuck');
    assert.equal(row.reason, 'waiting_for_shard');
    assert.deepEqual(row.waiting_on, ['only']);
    assert.equal(row.wait_reasons.length, 1);
    await sleep(1_000);
    assert.equal(
      (
        await cp.db
          .selectFrom('sous.step_attempt')
          .select('id')
          .where('execution_id', '=', executionId)
          .where('started_at', 'is not', null)
          .execute()
      ).length,
      0,
    );
    const late = await startShard(capability, { id: uniqueName('late'), group: uniqueName('test-shards') });
    await waitForExecution(cp, executionId, (v) => v.status === 'completed', 30_000);
    assert.equal((await shardsOf(executionId)).get('only'), late.workerId);
    const left = await cp.db
      .selectFrom('sous.waiting_command')
      .select('id')
      .where('execution_id', '=', executionId)
      .execute();
    assert.equal(left.length, 0);
  });

  it('holds a step asking for a contract no shard serves, and runs it on a shard of a matching version', async () => {
    const capability = cap('contract');
    const group = uniqueName('test-shards');
    const v1 = await startShard(capability, { id: uniqueName('v1'), group, version: 1 });
    const plan = recipe(`${ns}.contract`)
      .task('needs-v2', capability, { contract: '>=2', input: { item: '1' } })
      .build();
    await cp.registerRecipe(plan);
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: {} });
    const wait = await until('the contract wait', async () => {
      const rows = await cp.db
        .selectFrom('sous.waiting_command')
        .select(['reason_code', 'reason'])
        .where('execution_id', '=', executionId)
        .execute();
      return rows[0];
    });
    assert.equal(wait.reason_code, 'no_matching_contract');
    assert.match(wait.reason, /at contract >=2 \(live: 1\)/);
    // A v2 shard joins the same group while the v1 shard stays: only the v2 shard gets it.
    const v2 = await startShard(capability, { id: uniqueName('v2'), group, version: 2 });
    await waitForExecution(cp, executionId, (v) => v.status === 'completed', 30_000);
    assert.equal((await shardsOf(executionId)).get('needs-v2'), v2.workerId);
    assert.ok(!runs.some((r) => r.capability === capability && r.shard === v1.workerId));
  });

  it('drains a shard in the middle of a 200-item forEach: nothing lost, nothing run twice, nothing left in flight', async () => {
    const capability = cap('drain');
    const group = uniqueName('test-shards');
    const a = await startShard(capability, { id: uniqueName('a'), group, holdMs: 30 });
    const b = await startShard(capability, { id: uniqueName('b'), group, holdMs: 30 });
    const plan = forEachRecipe('drain', capability, 200, 20);
    await cp.registerRecipe(plan);
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: {} });
    await until('a shard to have run some items', async () =>
      runs.filter((r) => r.capability === capability && r.shard === a.workerId).length >= 10 ? true : undefined,
    );
    const drained = await gql<{ drainShard: { id: string; drainRequestedBy: string | null } }>(
      `mutation($id: ID!) { drainShard(id: $id) { id drainRequestedBy } }`,
      { id: a.workerId },
    );
    assert.equal(drained.drainShard.id, a.workerId);
    assert.ok(drained.drainShard.drainRequestedBy !== null);
    const doneAt = await until('the drain to complete', async () => {
      const data = await gql<{ shards: { id: string; health: string; inFlight: number }[] }>(
        `{ shards { id health inFlight } }`,
      );
      const shard = data.shards.find((s) => s.id === a.workerId);
      return shard?.health === 'DRAINING' && shard.inFlight === 0 ? Date.now() : undefined;
    });
    const view = await waitForExecution(cp, executionId, (v) => v.status === 'completed', 120_000);
    assert.equal(view.status, 'completed');
    const ran = runs.filter((r) => r.capability === capability);
    const perItem = new Map<number, number>();
    for (const r of ran) perItem.set(r.item, (perItem.get(r.item) ?? 0) + 1);
    assert.equal(perItem.size, 200, 'every item ran');
    assert.deepEqual(
      [...perItem].filter(([, n]) => n !== 1),
      [],
      'no item ran twice',
    );
    assert.ok(
      ran.some((r) => r.shard === b.workerId && r.at > doneAt),
      'the other shard took the rest',
    );
    assert.ok(!ran.some((r) => r.shard === a.workerId && r.at > doneAt), 'the drained shard took nothing new');
    assert.equal(a.health(), 'draining');
    const audit = await cp.db
      .selectFrom('sous.audit_log')
      .select(['operation', 'outcome'])
      .where('operation', '=', 'drainShard')
      .execute();
    assert.ok(audit.some((r) => r.outcome === 'ok'));
    // Resumed: it takes commands again.
    await gql(`mutation($id: ID!) { resumeShard(id: $id) { id } }`, { id: a.workerId });
    await until('the shard to resume', async () => (a.health() === 'healthy' ? true : undefined));
  });

  it('drops a SIGKILLed shard after the heartbeat timeout and runs its commands on another shard', async () => {
    const capability = cap('killed');
    const group = uniqueName('test-shards');
    const killedId = uniqueName('doomed');
    const child = spawn(process.execPath, ['--import', 'tsx', join('test', 'fixtures', 'shard-worker.ts')], {
      env: {
        ...process.env,
        BROKERS: kafkaBrokers(stackConfig).join(','),
        CAPABILITY: capability,
        GROUP: group,
        SHARD: killedId,
        HOLD_MS: '600000',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanup.push(async () => void child.kill('SIGKILL'));
    let handling = 0;
    const ready = new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        if (text.includes('worker ready')) resolve();
        handling += text.split('handling').length - 1;
      });
    });
    await ready;
    await until('the shard in the view', async () =>
      cp.shards().some((s) => s.shardId === killedId) ? true : undefined,
    );
    const plan = recipe(`${ns}.killed`)
      .task('only', capability, { input: { item: '1' } })
      .build();
    await cp.registerRecipe(plan);
    const started = await cp.startExecutions(Array.from({ length: 6 }, () => ({ recipe: plan.name, input: {} })));
    await until('the doomed shard to take a command', async () => (handling > 0 ? true : undefined));
    child.kill('SIGKILL');
    const killedAt = Date.now();
    const survivor = await startShard(capability, { id: uniqueName('survivor'), group });
    await until('the killed shard to leave the view', async () =>
      cp.shards().some((s) => s.shardId === killedId) ? undefined : true,
    );
    assert.ok(Date.now() - killedAt < 10_000, 'gone within the timeout and a tick');
    const mirrored = await until('the mirror to say gone', async () => {
      const row = await cp.db
        .selectFrom('sous.shard')
        .select('health')
        .where('shard_id', '=', killedId)
        .executeTakeFirst();
      return row?.health === 'gone' ? row : undefined;
    });
    assert.equal(mirrored.health, 'gone');
    for (const { executionId } of started) {
      await waitForExecution(cp, executionId, (v) => v.status === 'completed', 60_000);
      assert.equal((await shardsOf(executionId)).get('only'), survivor.workerId);
    }
  });

  it('tells subscribers when a shard joins, changes health and leaves', async () => {
    const capability = cap('watched');
    const client = createClient({
      url: `${url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
    });
    cleanup.push(async () => client.dispose());
    const seen: { shardId: string; kind: string; shard: { health: string } | null }[] = [];
    await new Promise<void>((resolve) => {
      client.on('connected', () => resolve());
      client.subscribe(
        { query: `subscription { shardsChanged { shardId kind shard { health } } }` },
        {
          next: (value) => void seen.push((value.data as { shardsChanged: (typeof seen)[number] }).shardsChanged),
          error: () => undefined,
          complete: () => undefined,
        },
      );
    });
    await sleep(500);
    const worker = await startShard(capability, { id: uniqueName('watched'), group: uniqueName('test-shards') });
    await worker.setHealth('degraded', 'testing');
    await worker.stop();
    const mine = () => seen.filter((c) => c.shardId === worker.workerId).map((c) => [c.kind, c.shard?.health ?? null]);
    await until('join, degraded, draining and leave', async () =>
      mine().some(([kind]) => kind === 'LEFT') ? true : undefined,
    );
    assert.deepEqual(mine(), [
      ['JOINED', 'HEALTHY'],
      ['CHANGED', 'DEGRADED'],
      ['CHANGED', 'DRAINING'],
      ['LEFT', null],
    ]);
  });

  it('aborts a running handler’s ctx.signal when its execution is cancelled; its late reply changes nothing', async () => {
    const capability = cap('cancelled');
    const seen: { started: number; aborted?: { code: unknown; message: string } }[] = [];
    const worker = createWorker({
      kafka,
      capabilities: [
        defineCapability({
          name: capability,
          input: z.object({}),
          output: z.object({ late: z.boolean() }),
          handler: async (_input, ctx) => {
            const entry: (typeof seen)[number] = { started: Date.now() };
            seen.push(entry);
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, 30_000);
              ctx.signal.addEventListener('abort', () => {
                clearTimeout(timer);
                resolve();
              });
            });
            const reason: unknown = ctx.signal.reason;
            if (reason instanceof Error)
              entry.aborted = { code: (reason as { code?: unknown }).code, message: reason.message };
            // Replies anyway, as a handler ignoring the signal would.
            return { late: true };
          },
        }),
      ],
      groupId: uniqueName('test-shards'),
      handleSignals: false,
    });
    await worker.start();
    cleanup.push(() => worker.stop());
    const plan = recipe(`${ns}.cancelled`).task('long', capability).build();
    await cp.registerRecipe(plan);
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: {} });
    await until('the handler to start', async () => (seen.length > 0 ? true : undefined));
    await cp.cancelExecution(executionId, 'testing the signal');
    const aborted = await until('the handler to see the cancel', async () => seen[0]?.aborted, 15_000);
    assert.equal(aborted.code, 'SOUS_STEP_CANCELLED');
    assert.match(aborted.message, /step cancelled: the execution was cancelled/);
    // The handler's late reply arrives and changes nothing.
    await sleep(1_500);
    const events = await cp.db
      .selectFrom('sous.execution_event')
      .select(['seq', 'type'])
      .where('execution_id', '=', executionId)
      .orderBy('seq')
      .execute();
    assert.equal(events.at(-1)?.type, 'ExecutionCancelled');
    const view = await waitForExecution(cp, executionId, (v) => v.status === 'cancelled');
    assert.equal(view.status, 'cancelled');
  });
});
