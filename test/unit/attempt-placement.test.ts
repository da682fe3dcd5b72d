// Where a batch's attempt rows go (0022): a step's current attempt on its step row, the
// attempts it replaced in superseded_attempt.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttemptRow, StepRow } from '../../src/engine/projection.js';
import { placeAttempts, type AttemptUpdateRow } from '../../src/store/attempts.js';

const at = '2026-01-01T00:00:00.000Z';
const later = '2026-01-01T00:00:05.000Z';

function step(key: string, status = 'scheduled', attempts = 1): StepRow {
  return {
    execution_id: 'E1',
    step_key: key,
    step_id: key,
    item_index: null,
    compensation: false,
    kind: 'task',
    status,
    attempts,
    output: null,
    error: null,
    child_execution_id: null,
    created_at: at,
    updated_at: at,
    finished_at: null,
  };
}

function attempt(id: string, key: string, n: number, status: AttemptRow['status'] = 'scheduled'): AttemptRow {
  return {
    id,
    execution_id: 'e1',
    step_key: key,
    attempt: n,
    capability: 'x.work',
    region: null,
    status,
    worker_id: null,
    error: null,
    scheduled_at: at,
    started_at: null,
    finished_at: null,
    last_heartbeat_at: null,
  };
}

const failed = (id: string, key: string): AttemptUpdateRow => ({
  id,
  execution_id: 'e1',
  step_key: key,
  status: 'failed',
  error: { code: 'boom', message: 'boom', retryable: true },
  finished_at: later,
});

describe('attempt placement', () => {
  it('a first attempt goes on its step row, whole, and nothing is superseded', () => {
    const placed = placeAttempts([step('a')], [attempt('a1', 'a', 1)], []);
    assert.deepEqual(placed.steps, [
      {
        ...step('a'),
        new_attempt: true,
        attempt_id: 'a1',
        capability: 'x.work',
        region: null,
        attempt_status: 'scheduled',
        worker_id: null,
        attempt_error: null,
        scheduled_at: at,
        started_at: null,
        attempt_finished_at: null,
        last_heartbeat_at: null,
      },
    ]);
    assert.deepEqual(
      [placed.replacedStored, placed.replacedNew, placed.replacedUpdates, placed.strayUpdates],
      [[], [], [], []],
    );
  });

  it('the change that finishes the stored attempt goes with its step row, naming the attempt', () => {
    const done: AttemptUpdateRow = {
      id: 'a1',
      execution_id: 'e1',
      step_key: 'a',
      status: 'completed',
      worker_id: 'w1',
      started_at: at,
      finished_at: later,
    };
    const placed = placeAttempts([step('a', 'completed')], [], [done]);
    assert.equal(placed.steps.length, 1);
    const [row] = placed.steps;
    assert.equal(row?.new_attempt, false);
    assert.equal(row.attempt_id, 'a1');
    assert.equal(row.attempt_status, 'completed');
    assert.equal(row.worker_id, 'w1');
    assert.equal(row.attempt_finished_at, later);
    // Not set by the change: left null, so the row keeps its value.
    assert.equal(row.capability, null);
    assert.equal(row.scheduled_at, null);
    assert.deepEqual(placed.strayUpdates, []);
  });

  it("a retry supersedes the stored attempt with the batch's change to it, and takes the row", () => {
    const placed = placeAttempts([step('a', 'scheduled', 2)], [attempt('a2', 'a', 2)], [failed('a1', 'a')]);
    assert.deepEqual(placed.replacedStored, [{ execution_id: 'E1', step_key: 'a' }]);
    assert.deepEqual(placed.replacedUpdates, [failed('a1', 'a')]);
    assert.equal(placed.steps[0]?.attempt_id, 'a2');
    assert.equal(placed.steps[0].new_attempt, true);
    assert.deepEqual(placed.replacedNew, []);
  });

  it('of two attempts one batch makes for a step, the later is current and the earlier superseded as it is', () => {
    const first = { ...attempt('a1', 'a', 1, 'failed'), finished_at: later };
    const placed = placeAttempts([step('a', 'scheduled', 2)], [attempt('a2', 'a', 2), first], []);
    assert.deepEqual(placed.replacedNew, [first]);
    assert.equal(placed.steps[0]?.attempt_id, 'a2');
  });

  it('changes no step row write can carry are applied by attempt id', () => {
    const placed = placeAttempts([step('a')], [], [failed('a1', 'a'), failed('a0', 'a'), failed('b1', 'b')]);
    assert.deepEqual(
      placed.strayUpdates.map((u) => u.id),
      ['a1', 'a0', 'b1'],
    );
    assert.deepEqual(placed.steps, [step('a')]);
  });

  it('steps are matched whatever the case of their execution id', () => {
    const placed = placeAttempts([step('a')], [attempt('a1', 'a', 1)], []);
    assert.equal(placed.steps[0]?.attempt_id, 'a1');
    assert.deepEqual(placed.replacedNew, []);
  });
});
