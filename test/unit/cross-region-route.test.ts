import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crossRegionRoute, crossesRegion } from '../../src/regions/cross-region-route.js';
import type { Route, StepNeeds } from '../../src/shards/route.js';

const local = (needs: StepNeeds): Route =>
  needs.region === 'ap-south'
    ? { kind: 'wait', code: 'no_shard_in_region', reason: 'none there' }
    : { kind: 'send', topic: `local:${needs.capability}` };

describe('cross-region routing', () => {
  const route = crossRegionRoute({ local: 'us-east', remotes: new Set(['eu-west']) }, local);

  it("sends a step resident in a linked region to that region's relay topic, and nothing else", () => {
    assert.deepEqual(route({ capability: 'x', region: 'eu-west' }), { kind: 'send', topic: 'sous.relay-eu-west' });
    assert.deepEqual(route({ capability: 'x', region: 'us-east' }), { kind: 'send', topic: 'local:x' });
    assert.deepEqual(route({ capability: 'x' }), { kind: 'send', topic: 'local:x' });
  });

  it('leaves a step resident in a region no relay links to the local routing (it waits visibly)', () => {
    assert.equal(route({ capability: 'x', region: 'ap-south' }).kind, 'wait');
  });

  it('knows a crossing command by its region and topic', () => {
    assert.equal(crossesRegion('us-east', 'eu-west', 'sous.relay-eu-west'), true);
    assert.equal(crossesRegion('us-east', 'eu-west', 'sous.cmd-eu-west.x'), false);
    assert.equal(crossesRegion(undefined, 'eu-west', 'sous.relay-eu-west'), false);
    assert.equal(crossesRegion('us-east', 'us-east', 'sous.relay-us-east'), false);
  });
});
