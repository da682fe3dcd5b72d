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
