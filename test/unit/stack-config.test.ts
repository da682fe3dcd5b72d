import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadStackConfig, StackConfigError } from '../../src/stack/config.js';

describe('loadStackConfig', () => {
  it('has documented defaults', () => {
    const config = loadStackConfig({});
    assert.equal(config.pgPort, 15432);
    assert.equal(config.kafkaPort, 19092);
    assert.equal(config.kafkaControllerPort, 19093);
    assert.equal(config.connectPort, 18083);
    assert.equal(config.connectExactlyOnce, true);
    assert.equal(config.pgDatabase, 'sous');
  });

  it('names the variable that is wrong', () => {
    assert.throws(
      () => loadStackConfig({ SOUS_KAFKA_PORT: 'abc' }),
      (e: unknown) => e instanceof StackConfigError && /SOUS_KAFKA_PORT/.test(e.message),
    );
    assert.throws(() => loadStackConfig({ SOUS_PG_PORT: '80' }), /SOUS_PG_PORT must be between 1024 and 65535/);
    assert.throws(
      () => loadStackConfig({ SOUS_PG_DATABASE: 'Bad-Name' }),
      /SOUS_PG_DATABASE must be a lower-case SQL identifier/,
    );
    assert.throws(
      () => loadStackConfig({ SOUS_CONNECT_EXACTLY_ONCE: 'yes' }),
      /SOUS_CONNECT_EXACTLY_ONCE must be true or false/,
    );
    assert.throws(() => loadStackConfig({ SOUS_CONNECT_PORT: '19092' }), /must differ/);
  });
});

describe('loadStackConfig: the tests stay off a developer stack', () => {
  it('npm test and files run by the test runner default to the test profile: its own ports and folder', () => {
    for (const env of [
      { npm_lifecycle_event: 'test' },
      { NODE_TEST_CONTEXT: 'child-v8' },
      { SOUS_STACK_PROFILE: 'test' },
    ]) {
      const config = loadStackConfig(env);
      assert.equal(config.profile, 'test');
      assert.deepEqual(
        [config.pgPort, config.kafkaPort, config.kafkaControllerPort, config.connectPort],
        [25432, 29092, 29093, 28083],
      );
      assert.match(config.stackDir, /\.cache\/stack-25432$/);
    }
    const dev = loadStackConfig({ npm_lifecycle_event: 'start' });
    assert.equal(dev.profile, 'dev');
    assert.match(dev.stackDir, /\.cache\/stack$/);
    // Every port and the folder of the test stack differ from the developer's.
    const test = loadStackConfig({ npm_lifecycle_event: 'test' });
    const devPorts = new Set([dev.pgPort, dev.kafkaPort, dev.kafkaControllerPort, dev.connectPort]);
    for (const port of [test.pgPort, test.kafkaPort, test.kafkaControllerPort, test.connectPort]) {
      assert.ok(!devPorts.has(port), `port ${port} is shared`);
    }
    assert.notEqual(test.stackDir, dev.stackDir);
  });

  it('an explicit setting wins over the profile, and a stack on other ports gets a folder of its own', () => {
    const config = loadStackConfig({ NODE_TEST_CONTEXT: 'child-v8', SOUS_PG_PORT: '15472', SOUS_STACK_PROFILE: 'dev' });
    assert.equal(config.profile, 'dev');
    assert.equal(config.pgPort, 15472);
    assert.equal(config.kafkaPort, 19092);
    assert.match(config.stackDir, /\.cache\/stack-15472$/);
    assert.equal(loadStackConfig({ SOUS_STACK_DIR: '/tmp/x', npm_lifecycle_event: 'test' }).stackDir, '/tmp/x');
    assert.throws(() => loadStackConfig({ SOUS_STACK_PROFILE: 'prod' }), /SOUS_STACK_PROFILE must be dev or test/);
  });
});
