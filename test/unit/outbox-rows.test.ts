import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutboxMessageInvalidError } from '../../src/errors.js';
import type { OutboxMessage } from '../../src/outbox/outbox-message.js';
import { toOutboxRows } from '../../src/outbox/write-outbox.js';

const valid: OutboxMessage = {
  topic: 'sous.cmd.payments.charge',
  key: 'exec-1',
  aggregateType: 'execution',
  eventType: 'step.command',
  payload: { amount: 3 },
};

function invalid(messages: unknown[], reason: RegExp, maxPayloadBytes?: number): void {
  assert.throws(
    () => toOutboxRows(messages as OutboxMessage[], { maxPayloadBytes }),
    (error: unknown) => {
      assert.ok(error instanceof OutboxMessageInvalidError);
      assert.equal(error.code, 'SOUS_OUTBOX_MESSAGE_INVALID');
      assert.match(error.message, reason);
      return true;
    },
  );
}

describe('toOutboxRows', () => {
  it('turns a message into a row with a fresh UUID and JSON text columns', () => {
    const [row] = toOutboxRows([{ ...valid, headers: { a: 'b' }, correlationId: 'c' }]);
    assert.ok(row);
    assert.match(row.id, /^[0-9a-f-]{36}$/);
    assert.equal(row.payload, '{"amount":3}');
    assert.equal(row.headers, '{"a":"b"}');
    assert.equal(row.correlationId, 'c');
    assert.equal(row.traceparent, null);
  });

  it('keeps a given id, so a retried write produces the same Kafka id header', () => {
    const id = '0b5cd5a4-1d9c-4fb0-8d3e-2f0d2a9b7c11';
    assert.equal(toOutboxRows([{ ...valid, id }])[0]?.id, id);
  });

  it('names the path and reason of each problem', () => {
    invalid([valid, { ...valid, topic: 'bad topic!' }], /messages\.1\.topic: topic may hold only/);
    invalid([{ ...valid, key: '' }], /messages\.0\.key: key must not be empty/);
    invalid([{ ...valid, topic: '..' }], /messages\.0\.topic: topic must not be "\." or "\.\."/);
    invalid([{ ...valid, traceparent: 'abc' }], /messages\.0\.traceparent: traceparent must be a W3C traceparent/);
    invalid([{ ...valid, headers: { n: 1 } }], /messages\.0\.headers\.n: header values must be strings/);
    invalid([{ ...valid, id: 'nope' }], /messages\.0\.id: id must be a UUID/);
    invalid([{ ...valid, surprise: true }], /surprise/);
    invalid([{ ...valid, payload: { f: () => 1 } }], /messages\.0\.payload/);
  });

  it('refuses a payload larger than the limit', () => {
    invalid(
      [{ ...valid, payload: { blob: 'x'.repeat(2000) } }],
      /payload is 2\d{3} bytes, more than the 1000 allowed/,
      1000,
    );
  });
});
