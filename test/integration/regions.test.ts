// Steps across two real regions: the execution lives in the home region (its control
// plane, PostgreSQL and Kafka); a step resident in the other region goes through the
// outbox to the home cluster's relay topic, the other region's relay carries it into its
// cluster, a shard of that region runs it, and its reply comes home the same way.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { createKafka } from '../../src/kafka/kafka-client.js';
import { recipe } from '../../src/recipe/index.js';
import { startRelay, type Relay } from '../../src/relay/relay.js';
import { createWorker } from '../../src/worker/create-worker.js';
import { defineCapability } from '../../src/worker/index.js';
import { startTestControlPlane, waitForExecution } from '../helpers/control-plane.js';
import { homeBrokers, remoteBrokers, useRemoteRegion } from '../helpers/regions.js';
import { testKafka, uniqueName } from '../helpers/stack.js';

const home = uniqueName('home');
const remote = uniqueName('remote');
const ns = uniqueName('rg').replaceAll('-', '');
const homeCap = `test${ns}.home`;
const remoteCap = `test${ns}.remote`;
const cleanup: (() => Promise<unknown>)[] = [];
let cp: ControlPlane & { replyTopic: string };
const homeShard = uniqueName('home-shard');
const remoteShard = uniqueName('remote-shard');

const addOne = (name: string, shard: string) =>
  defineCapability({
    name,
    input: z.object({ n: z.number() }),
    output: z.object({ n: z.number(), at: z.string() }),
    handler: async ({ n }) => Promise.resolve({ n: n + 1, at: shard }),
  });

before(async () => {
  await useRemoteRegion();
  const relays: Relay[] = [
    startRelay({ region: remote, brokers: remoteBrokers, sources: [{ region: home, brokers: homeBrokers }] }),
    startRelay({ region: home, brokers: homeBrokers, sources: [{ region: remote, brokers: remoteBrokers }] }),
  ];
  for (const relay of relays) cleanup.push(() => relay.stop());
  await Promise.all(relays.map((r) => r.ready));
  cp = await startTestControlPlane({ region: home, remoteRegions: [remote], waitingSweepMs: 500 });
  cleanup.push(() => cp.stop());
  const workers = [
    createWorker({
      kafka: testKafka(),
      capabilities: [addOne(homeCap, homeShard)],
      groupId: uniqueName('home-workers'),
      workerId: homeShard,
      region: home,
      heartbeatIntervalMs: 500,
      handleSignals: false,
    }),
    createWorker({
      kafka: createKafka({ brokers: remoteBrokers, clientId: uniqueName('remote-worker') }),
      capabilities: [addOne(remoteCap, remoteShard)],
      groupId: uniqueName('remote-workers'),
      workerId: remoteShard,
      region: remote,
      heartbeatIntervalMs: 500,
      handleSignals: false,
    }),
  ];
  for (const worker of workers) {
    await worker.start();
    cleanup.push(() => worker.stop());
  }
});

after(async () => {
  for (const step of cleanup.reverse()) await step();
});

describe('steps across regions', () => {
  it('completes a recipe alternating home and remote steps; the home region sees every step and the shard that ran it', async () => {
    const plan = recipe(`${ns}.alternate`)
      .task('a', homeCap, { input: { n: 'input.n' } })
      .task('b', remoteCap, { input: { n: 'outputs.a.n' }, region: remote })
      .task('c', homeCap, { input: { n: 'outputs.b.n' } })
      .task('d', remoteCap, { input: { n: 'outputs.c.n' }, region: remote })
      .output('outputs.d')
      .build();
    await cp.registerRecipe(plan);
    const runs = 5;
    const started = await Promise.all(
      [...Array(runs).keys()].map((i) => cp.startExecution({ recipe: plan.name, input: { n: i * 10 } })),
    );
    for (const [i, { executionId }] of started.entries()) {
      const view = await waitForExecution(cp, executionId, undefined, 120_000);
      assert.equal(view.status, 'completed', JSON.stringify(view));
      assert.deepEqual(view.output, { n: i * 10 + 4, at: remoteShard });
    }
    const attempts = await cp.db
      .selectFrom('sous.step_attempt')
      .select(['execution_id', 'step_key', 'worker_id', 'status', 'region', 'scheduled_at', 'finished_at'])
      .where(
        'execution_id',
        'in',
        started.map((s) => s.executionId),
      )
      .execute();
    assert.equal(attempts.length, runs * 4, 'one attempt per step: nothing ran twice');
    for (const a of attempts) {
      assert.equal(a.status, 'completed');
      assert.equal(a.worker_id, a.step_key === 'b' || a.step_key === 'd' ? remoteShard : homeShard, JSON.stringify(a));
    }
    // Step-to-step: from the previous step's end to this step's end (handlers take no time).
    const ms = (x: unknown) => new Date(x as string).getTime();
    const cross: number[] = [];
    for (const { executionId } of started) {
      const at = new Map(
        attempts.filter((s) => s.execution_id === executionId).map((s) => [s.step_key, ms(s.finished_at)]),
      );
      for (const [prev, next] of [
        ['a', 'b'],
        ['c', 'd'],
      ] as const)
        cross.push((at.get(next) ?? 0) - (at.get(prev) ?? 0));
    }
    cross.sort((x, y) => x - y);
    process.stderr.write(`[regions] cross-region step-to-step ms: ${cross.join(', ')}\n`);
  });
});
