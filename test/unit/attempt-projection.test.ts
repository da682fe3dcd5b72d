// A dead-lettered attempt is projected as dead_lettered: not running (no worker holds it)
// and not finished (it may be reprocessed, which makes it scheduled again).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EngineEvent } from '../../src/engine/events.js';
import { attemptRowsOf } from '../../src/engine/projection.js';

const at = '2026-01-01T00:00:00.000Z';
const scheduled: EngineEvent = {
  type: 'StepScheduled',
  at,
  stepKey: 'work',
  stepId: 'work',
  stepExecutionId: 'a1',
  attempt: 1,
  capability: 'x.work',
  input: {},
  timeouts: {},
};
const started: EngineEvent = { type: 'StepStarted', at, stepKey: 'work', stepExecutionId: 'a1', workerId: 'w' };
const parked: EngineEvent = {
  type: 'StepDeadLettered',
  at,
  stepKey: 'work',
  stepExecutionId: 'a1',
  error: { code: 'upstream_down', message: 'down', retryable: true },
};

const statusAfter = (events: EngineEvent[]) => {
  const row = attemptRowsOf('e1', events).get('a1');
  return { status: row?.status, finished: row?.finished_at, error: row?.error };
};

describe('attempt projection: dead letters', () => {
  it('a running attempt that is dead-lettered is dead_lettered, unfinished, with the error', () => {
    assert.deepEqual(statusAfter([scheduled, started, parked]), {
      status: 'dead_lettered',
      finished: null,
      error: { code: 'upstream_down', message: 'down', retryable: true },
    });
  });

  it('so is one dead-lettered before it started (an input the worker refused)', () => {
    assert.equal(statusAfter([scheduled, parked]).status, 'dead_lettered');
  });

  it('reprocessing makes it scheduled again', () => {
    const requeued: EngineEvent = { type: 'StepRequeued', at, stepKey: 'work', stepExecutionId: 'a1' };
    assert.equal(statusAfter([scheduled, started, parked, requeued]).status, 'scheduled');
  });
});
