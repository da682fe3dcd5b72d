import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KafkaMessage } from 'kafkajs';
import { MalformedRecordError } from '../../src/errors.js';
import { decodeOutboxRecord } from '../../src/kafka/outbox-record.js';

const ID = '5f0c6a9e-7d1f-4b8e-9a53-0c2d1e6f7a88';

function message(
  overrides: { key?: Buffer | null; value?: Buffer | null } = {},
  headers: Record<string, Buffer | Buffer[] | null | undefined> = {},
): KafkaMessage {
  return {
    key: Buffer.from('exec-1'),
    value: Buffer.from('{"a":1}'),
    timestamp: '1700000000000',
    attributes: 0,
    offset: '7',
    ...overrides,
    headers: {
      id: Buffer.from(ID),
      'sous-event-type': Buffer.from('step.command'),
      'sous-aggregate-type': Buffer.from('execution'),
      ...headers,
    },
  };
}

function rejects(m: KafkaMessage, reason: RegExp): void {
  assert.throws(
    () => decodeOutboxRecord('orders', 3, m),
    (error: unknown) => {
      assert.ok(error instanceof MalformedRecordError);
      assert.equal(error.code, 'SOUS_MALFORMED_RECORD');
      assert.equal(error.retryable, false);
      assert.match(error.message, reason);
      assert.match(error.message, /orders\[3\]@7/, 'names where the record sits');
      return true;
    },
  );
}

describe('decodeOutboxRecord', () => {
  it('decodes what the outbox router produces', () => {
    const record = decodeOutboxRecord(
      'orders',
      3,
      message(
        {},
        {
          traceparent: Buffer.from('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
          'sous-headers': Buffer.from('{"tenant":"acme"}'),
          'sous-correlation-id': null,
        },
      ),
    );
    assert.deepEqual(record, {
      id: ID,
      topic: 'orders',
      partition: 3,
      offset: '7',
      key: 'exec-1',
      eventType: 'step.command',
      aggregateType: 'execution',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      correlationId: undefined,
      idempotencyKey: undefined,
      headers: { tenant: 'acme' },
      payload: { a: 1 },
      timestamp: 1700000000000,
    });
  });

  it('rejects a record without the id header', () => rejects(message({}, { id: undefined }), /header id is missing/));
  it('rejects an id that is not a UUID', () =>
    rejects(message({}, { id: Buffer.from('42') }), /header id is not a UUID/));
  it('rejects a missing key', () => rejects(message({ key: null }), /key is missing/));
  it('rejects a tombstone', () => rejects(message({ value: null }), /value is missing/));
  it('rejects a value that is not JSON', () => rejects(message({ value: Buffer.from('{nope') }), /value is not JSON/));
  it('rejects a missing event type', () =>
    rejects(message({}, { 'sous-event-type': undefined }), /header sous-event-type is missing/));
  it('rejects a repeated header', () =>
    rejects(
      message({}, { 'sous-event-type': [Buffer.from('a'), Buffer.from('b')] }),
      /sous-event-type appears 2 times/,
    ));
  it('rejects extra headers that are not a JSON object of strings', () => {
    rejects(message({}, { 'sous-headers': Buffer.from('[1]') }), /sous-headers must be a JSON object of strings/);
    rejects(message({}, { 'sous-headers': Buffer.from('{"n":1}') }), /sous-headers must be a JSON object of strings/);
    rejects(message({}, { 'sous-headers': Buffer.from('{') }), /sous-headers is not JSON/);
  });
});
