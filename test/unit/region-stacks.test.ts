import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRegionList, regionPortStep, regionStacks } from '../../src/regions/region-stacks.js';
import { loadStackConfig, PROFILE_PORTS, StackConfigError } from '../../src/stack/config.js';

describe('region stacks', () => {
  it('keeps the first region on the configured ports and shifts the others', () => {
    const base = loadStackConfig({
      SOUS_STACK_PROFILE: 'test',
      SOUS_PG_PORT: '25432',
      SOUS_KAFKA_PORT: '29092',
      SOUS_KAFKA_CONTROLLER_PORT: '29093',
      SOUS_CONNECT_PORT: '28083',
    });
    const [home, eu] = regionStacks(base, ['us-east', 'eu-west']);
    assert.deepEqual(
      [home?.config.pgPort, home?.config.kafkaPort, home?.config.stackDir],
      [25432, 29092, base.stackDir],
    );
    assert.deepEqual(
      [eu?.config.pgPort, eu?.config.kafkaPort, eu?.config.kafkaControllerPort, eu?.config.connectPort],
      [26432, 30092, 30093, 29083],
    );
    assert.equal(eu?.config.stackDir, `${base.stackDir}-r1`);
  });

  it("never lands a derived region on another profile's ports (CI's second region meets no dev or test port)", () => {
    const taken = new Set(Object.values(PROFILE_PORTS).flatMap((p) => Object.values(p)));
    for (const profile of ['dev', 'test'] as const) {
      const base = loadStackConfig({ SOUS_STACK_PROFILE: profile });
      for (const { config, index } of regionStacks(base, ['a', 'b', 'c'])) {
        if (index === 0) continue;
        for (const port of [config.pgPort, config.kafkaPort, config.kafkaControllerPort, config.connectPort]) {
          assert.ok(!taken.has(port), `${profile} region ${index} port ${port} is a profile port`);
        }
      }
    }
  });

  it('refuses region lists and steps that would collide or are malformed, naming the setting', () => {
    assert.throws(() => parseRegionList('us-east,us-east'), /SOUS_REGIONS names us-east twice/);
    assert.throws(() => parseRegionList('EU_west', '--regions'), /--regions holds "EU_west"/);
    assert.throws(() => parseRegionList(' , '), /names no region/);
    assert.throws(() => regionPortStep({ SOUS_REGION_PORT_STEP: '5' }), /SOUS_REGION_PORT_STEP/);
    const base = loadStackConfig({ SOUS_STACK_PROFILE: 'test' });
    // 29092 - 25432 = 3660: a step of 3660 puts region 1's PostgreSQL on region 0's Kafka port.
    assert.throws(
      () => regionStacks(base, ['a', 'b'], 3660),
      (e: unknown) => e instanceof StackConfigError && /region b's SOUS_PG_PORT would be 29092/.test(e.message),
    );
    assert.throws(() => regionStacks(base, ['a', 'b', 'c'], 20000), /over 65535/);
  });
});
