// The pure parts of the shard registry: routing, the live view, the assigner's plan,
// contract ranges and topic names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assignPartitions } from '../../src/kafka/health-aware-assigner.js';
import {
  capabilityOfTopic,
  commandTopicFor,
  parseContractRange,
  shardCommandTopics,
  type ShardAnnouncement,
} from '../../src/protocol/shards.js';
import { ShardRegistryView } from '../../src/shards/registry-view.js';
import { routeStep } from '../../src/shards/route.js';
import { recipe, RecipeInvalidError } from '../../src/recipe/index.js';

const shard = (id: string, o: Partial<ShardAnnouncement> = {}): ShardAnnouncement => ({
  kind: 'shard.announce',
  shardId: id,
  service: 'svc',
  instance: `${id}-host`,
  incarnation: 'i1',
  region: null,
  capabilities: [{ name: 'pay.charge', version: 1 }],
  health: 'healthy',
  load: { inFlight: 0, concurrency: 10 },
  at: '2026-11-29T00:00:00.000Z',
  heartbeatIntervalMs: 2000,
  ...o,
});

describe('routeStep', () => {
  it('sends a step without constraints to the capability’s shared topic', () => {
    assert.deepEqual(routeStep([shard('a')], { capability: 'pay.charge' }), {
      kind: 'send',
      topic: 'sous.cmd.pay.charge',
    });
  });

  it('waits with a reason when no shard serves the capability', () => {
    const route = routeStep([shard('a')], { capability: 'pay.refund' });
    assert.deepEqual(route, { kind: 'wait', code: 'no_shard', reason: 'no shard serves pay.refund' });
  });

  it('keeps residency: a region step goes to its region’s topic, and waits when the region has no shard', () => {
    const shards = [shard('us', { region: 'us-east' }), shard('eu', { region: 'eu-west' })];
    assert.deepEqual(routeStep(shards, { capability: 'pay.charge', region: 'eu-west' }), {
      kind: 'send',
      topic: 'sous.cmd-eu-west.pay.charge',
    });
    const wait = routeStep([shard('us', { region: 'us-east' })], { capability: 'pay.charge', region: 'eu-west' });
    assert.equal(wait.kind === 'wait' && wait.code, 'no_shard_in_region');
  });

  it('waits while every capable shard drains, and ignores draining shards when choosing', () => {
    const wait = routeStep([shard('a', { health: 'draining' })], { capability: 'pay.charge' });
    assert.equal(wait.kind === 'wait' && wait.code, 'all_draining');
    const degradedOnly = routeStep([shard('a', { health: 'degraded' })], { capability: 'pay.charge' });
    assert.equal(degradedOnly.kind, 'send');
  });

  it('routes a contract range to the highest live version in range, healthy first', () => {
    const shards = [
      shard('v1', { capabilities: [{ name: 'pay.charge', version: 1 }] }),
      shard('v2', { capabilities: [{ name: 'pay.charge', version: 2 }] }),
      shard('v3', { capabilities: [{ name: 'pay.charge', version: 3 }], health: 'degraded' }),
    ];
    assert.deepEqual(routeStep(shards, { capability: 'pay.charge', contract: { min: 2 } }), {
      kind: 'send',
      topic: 'sous.cmd_v2.pay.charge',
    });
    assert.deepEqual(routeStep(shards, { capability: 'pay.charge', contract: { min: 3 }, region: undefined }), {
      kind: 'send',
      topic: 'sous.cmd_v3.pay.charge',
    });
    const none = routeStep(shards, { capability: 'pay.charge', contract: { min: 4 } });
    assert.deepEqual(none, {
      kind: 'wait',
      code: 'no_matching_contract',
      reason: 'no shard serves pay.charge at contract >=4 (live: 1, 2, 3)',
    });
  });
});

describe('ShardRegistryView', () => {
  it('adds, changes, expires and removes shards, and says which changes matter to routing', () => {
    const view = new ShardRegistryView(10_000);
    assert.deepEqual(view.apply('a', shard('a'), 1_000, 1_000), { shardId: 'a', kind: 'joined', routing: true });
    const beat = view.apply('a', shard('a', { load: { inFlight: 3, concurrency: 10 } }), 2_000, 2_000);
    assert.deepEqual(beat, { shardId: 'a', kind: 'changed', routing: false });
    const degraded = view.apply('a', shard('a', { health: 'degraded' }), 3_000, 3_000);
    assert.equal(degraded?.routing, true);
    assert.equal(view.apply('a', shard('a'), 2_500, 3_100), undefined, 'an older heartbeat is ignored');
    assert.deepEqual(view.expire(12_999), []);
    assert.deepEqual(view.expire(13_001), [{ shardId: 'a', kind: 'expired', routing: true }]);
    assert.equal(view.live().length, 0);
    view.apply('b', shard('b'), 20_000, 20_000);
    assert.deepEqual(view.apply('b', null, 21_000, 21_000), { shardId: 'b', kind: 'left', routing: true });
  });

  it('does not bring back a shard from an old record read late (a dead shard without goodbye)', () => {
    const view = new ShardRegistryView(10_000);
    assert.equal(view.apply('old', shard('old'), 1_000, 60_000), undefined);
    assert.equal(view.live().length, 0);
    // A record stamped in the future (a fast clock) counts from when it was read.
    view.apply('fast', shard('fast'), 99_000, 60_000);
    assert.equal(view.get('fast')?.lastHeartbeatMs, 60_000);
  });
});

describe('assignPartitions', () => {
  const partitions = (n: number) => () => Array.from({ length: n }, (_, i) => i);

  it('gives a topic’s partitions only to members reading it, healthy ones first', () => {
    const plan = assignPartitions(
      [
        { memberId: 'm1', topics: ['shared', 'eu'], health: 'healthy' },
        { memberId: 'm2', topics: ['shared', 'us'], health: 'healthy' },
        { memberId: 'm3', topics: ['shared', 'eu'], health: 'degraded' },
      ],
      partitions(4),
    );
    assert.deepEqual(plan.get('m1')?.eu, [0, 1, 2, 3], 'the healthy eu member takes all of eu');
    assert.equal(plan.get('m3')?.eu, undefined, 'the degraded one none while a healthy one reads it');
    assert.deepEqual(plan.get('m2')?.us, [0, 1, 2, 3]);
    assert.equal(plan.get('m1')?.us, undefined, 'no member gets a topic it does not read');
    const shared = [...(plan.get('m1')?.shared ?? []), ...(plan.get('m2')?.shared ?? [])].sort();
    assert.deepEqual(shared, [0, 1, 2, 3]);
    assert.equal(plan.get('m3')?.shared, undefined);
  });

  it('gives partitions to degraded members when no healthy member reads the topic', () => {
    const plan = assignPartitions(
      [
        { memberId: 'm1', topics: ['t'], health: 'degraded' },
        { memberId: 'm2', topics: ['t'], health: 'degraded' },
      ],
      partitions(4),
    );
    assert.deepEqual([plan.get('m1')?.t?.length, plan.get('m2')?.t?.length], [2, 2]);
  });
});

describe('contract ranges and topic names', () => {
  it('parses 2, >=2 and 2..3, and refuses anything else', () => {
    assert.deepEqual(parseContractRange(2), { min: 2, max: 2 });
    assert.deepEqual(parseContractRange('>=2'), { min: 2 });
    assert.deepEqual(parseContractRange('2..3'), { min: 2, max: 3 });
    for (const bad of ['3..2', '0', '^2', '', 'two', 1.5, 0])
      assert.equal(parseContractRange(bad), undefined, String(bad));
  });

  it('names topics that cannot collide and reads the capability back', () => {
    assert.equal(commandTopicFor('a.b', undefined), 'sous.cmd.a.b');
    assert.equal(commandTopicFor('a.b', 'eu-west', 2), 'sous.cmd-eu-west_v2.a.b');
    for (const topic of shardCommandTopics('a.b', 2, 'eu-west')) assert.equal(capabilityOfTopic(topic), 'a.b');
    assert.equal(capabilityOfTopic('sous.replies'), undefined);
  });
});

describe('recipe steps with a region and a contract', () => {
  it('compiles a contract range into the plan and names a bad one or a bad region', () => {
    const plan = recipe('r').task('charge', 'pay.charge', { region: 'eu-west', contract: '2..3' }).build();
    const step = plan.steps[0];
    assert.ok(step?.type === 'task');
    assert.deepEqual(step.contract, { min: 2, max: 3 });
    assert.throws(
      () => recipe('r').task('charge', 'pay.charge', { contract: '^2' }).build(),
      (e: Error) =>
        e instanceof RecipeInvalidError && /steps\[0\]\.contract: must be contract versions/.test(e.message),
    );
    assert.throws(
      () => recipe('r').task('charge', 'pay.charge', { region: 'EU West' }).build(),
      (e: Error) => e instanceof RecipeInvalidError && /steps\[0\]\.region: must be a region/.test(e.message),
    );
  });
});
