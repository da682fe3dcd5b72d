import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { failedParts, isRunning } from '../../src/outbox/connector-watchdog.js';

describe('connector status', () => {
  it('names each FAILED part with the first line of its trace', () => {
    const failed = failedParts({
      connector: { state: 'RUNNING' },
      tasks: [
        { id: 0, state: 'FAILED', trace: "io.debezium.DebeziumException: Couldn't initialize type registry\n\tat …" },
        { id: 1, state: 'RUNNING' },
      ],
    });
    assert.deepEqual(failed, [
      { part: 'task 0', reason: "io.debezium.DebeziumException: Couldn't initialize type registry" },
    ]);
  });

  it('puts a FAILED connector first, and a part without a trace gets an empty reason', () => {
    const failed = failedParts({ connector: { state: 'FAILED' }, tasks: [{ id: 0, state: 'FAILED' }] });
    assert.deepEqual(
      failed.map((f) => f.part),
      ['connector', 'task 0'],
    );
    assert.equal(failed[1]?.reason, '');
  });

  it('runs only when the connector and at least one task, all of them, run', () => {
    assert.equal(isRunning({ connector: { state: 'RUNNING' }, tasks: [{ id: 0, state: 'RUNNING' }] }), true);
    assert.equal(isRunning({ connector: { state: 'RUNNING' }, tasks: [] }), false);
    assert.equal(
      isRunning({
        connector: { state: 'RUNNING' },
        tasks: [
          { id: 0, state: 'RUNNING' },
          { id: 1, state: 'UNASSIGNED' },
        ],
      }),
      false,
    );
    assert.equal(isRunning({ connector: { state: 'PAUSED' }, tasks: [{ id: 0, state: 'RUNNING' }] }), false);
  });
});
