import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadRelayConfig } from '../../src/relay/config.js';
import {
  RELAY_DEAD_LETTER_TOPIC,
  RELAY_HEADERS,
  relayDestination,
  routingHeaders,
  routingOf,
} from '../../src/relay/routing.js';
import type { SourceRecord } from '../../src/kafka/transactional-copy.js';

const record = (headers: Record<string, string>): SourceRecord => ({
  topic: 'sous.relay-eu-west',
  partition: 2,
  offset: '41',
  key: Buffer.from('k'),
  value: Buffer.from('{}'),
  headers,
});

describe('relay routing', () => {
  it('routes by plain headers and by the outbox JSON header, stamping the source and dropping the address', () => {
    const plain = relayDestination(
      record({ ...routingHeaders('eu-west', 'sous.cmd-eu-west.x'), traceparent: 't' }),
      'us-east',
      'eu-west',
    );
    assert.equal(plain.topic, 'sous.cmd-eu-west.x');
    assert.equal(plain.refused, undefined);
    assert.deepEqual(plain.headers, { traceparent: 't', [RELAY_HEADERS.relayedFrom]: 'us-east' });
    const viaOutbox = record({ 'sous-headers': JSON.stringify(routingHeaders('eu-west', 'sous.replies')) });
    assert.deepEqual(routingOf(viaOutbox.headers), { region: 'eu-west', topic: 'sous.replies' });
    assert.equal(relayDestination(viaOutbox, 'us-east', 'eu-west').topic, 'sous.replies');
  });

  it('dead-letters what it cannot route, with the reason and where it was, instead of stopping the partition', () => {
    const cases: [Record<string, string>, string][] = [
      [{}, 'no_routing_headers'],
      [{ 'sous-headers': 'not json' }, 'no_routing_headers'],
      [routingHeaders('ap-south', 'sous.cmd.x'), 'wrong_region'],
      [routingHeaders('eu-west', 'sous.relay-us-east'), 'bad_target_topic'],
      [routingHeaders('eu-west', 'bad topic!'), 'bad_target_topic'],
    ];
    for (const [headers, code] of cases) {
      const out = relayDestination(record(headers), 'us-east', 'eu-west');
      assert.equal(out.topic, RELAY_DEAD_LETTER_TOPIC);
      assert.equal(out.refused, code);
      assert.match(out.headers[RELAY_HEADERS.error] ?? '', new RegExp(`^${code} \\(sous.relay-eu-west/2@41\\)$`));
    }
  });

  it('dead-letters a record whose target topic the destination does not have, naming the topic, instead of stalling', () => {
    const headers = routingHeaders('eu-west', 'sous.cmd-eu-west.nobody');
    const out = relayDestination(record(headers), 'us-east', 'eu-west', (t) => t !== 'sous.cmd-eu-west.nobody');
    assert.equal(out.topic, RELAY_DEAD_LETTER_TOPIC);
    assert.equal(out.refused, 'unknown_target_topic');
    assert.equal(
      out.headers[RELAY_HEADERS.error],
      'unknown_target_topic (sous.relay-eu-west/2@41 to sous.cmd-eu-west.nobody)',
    );
    // The original address stays on the dead letter, so an operator can send it on once the topic exists.
    assert.equal(out.headers['sous-target-topic'], 'sous.cmd-eu-west.nobody');
    assert.equal(relayDestination(record(headers), 'us-east', 'eu-west', () => true).topic, 'sous.cmd-eu-west.nobody');
  });

  it('reads its settings and names the variable that is wrong', () => {
    const ok = loadRelayConfig({
      SOUS_REGION: 'eu-west',
      SOUS_KAFKA_BROKERS: '127.0.0.1:50092',
      SOUS_RELAY_SOURCES: 'us-east=127.0.0.1:49092|127.0.0.1:49093,ap-south=10.0.0.1:9092',
    });
    assert.deepEqual(ok.sources, [
      { region: 'us-east', brokers: ['127.0.0.1:49092', '127.0.0.1:49093'] },
      { region: 'ap-south', brokers: ['10.0.0.1:9092'] },
    ]);
    assert.equal(ok.fetchMaxBytes, 1048576);
    assert.throws(() => loadRelayConfig({ SOUS_RELAY_SOURCES: 'us-east=a:1' }), /SOUS_REGION is required/);
    assert.throws(() => loadRelayConfig({ SOUS_REGION: 'eu-west' }), /SOUS_RELAY_SOURCES is required/);
    assert.throws(() => loadRelayConfig({ SOUS_REGION: 'eu-west', SOUS_RELAY_SOURCES: 'eu-west=a:1' }), /own region/);
    assert.throws(
      () => loadRelayConfig({ SOUS_REGION: 'eu-west', SOUS_RELAY_SOURCES: 'us-east' }),
      /not <region>=<host:port>/,
    );
    assert.throws(
      () =>
        loadRelayConfig({ SOUS_REGION: 'eu-west', SOUS_RELAY_SOURCES: 'us-east=a:1', SOUS_RELAY_FETCH_MAX_BYTES: '5' }),
      /SOUS_RELAY_FETCH_MAX_BYTES/,
    );
  });
});
