import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadEnvironmentConfig } from '../../src/config.js';
import { ExecutionStates } from '../../src/control-plane/execution-states.js';
import { replay } from '../../src/engine/evolve.js';
import type { ExecutionState, ExecutionStatus } from '../../src/engine/state.js';
import type { RecipePlan } from '../../src/recipe/plan.js';
import { ConfigInvalidError } from '../../src/errors.js';
import type { LockedHead } from '../../src/store/executions.js';

/** A state as the engine folds it from a start (then with the status asked for). */
const state = (executionId: string, status: ExecutionStatus = 'running'): ExecutionState => {
  const plan: RecipePlan = { name: 'r', steps: [] };
  const started = replay(
    [{ type: 'ExecutionStarted', at: '2026-01-01T00:00:00.000Z', executionId, recipe: 'r', version: 1, input: null }],
    plan,
  );
  assert.ok(started !== undefined);
  return { ...started, status };
};

const head = (stateSeq: number): LockedHead => ({
  id: 'e',
  status: 'running',
  recipe_name: 'r',
  recipe_version: 1,
  last_seq: stateSeq,
  state_seq: stateSeq,
  written_by: null,
  traceparent: null,
  reply_topic: 'sous.replies',
});

describe('execution states (cache and snapshot cadence)', () => {
  it('stores a snapshot every N events, not at start or at the end', () => {
    const states = new ExecutionStates({ snapshotEvery: 10 });
    assert.equal(states.snapshotDue(undefined, 3), false, 'a new execution replays its few events');
    assert.equal(states.snapshotDue(undefined, 10), true, 'a start with N events already');
    assert.equal(states.snapshotDue(head(20), 29), false);
    assert.equal(states.snapshotDue(head(20), 30), true, '10 events after the last snapshot');
    assert.equal(states.snapshotDue(head(0), 9), false, 'no snapshot yet, 9 events');
    assert.equal(states.snapshotDue(head(0), 10), true, 'no snapshot yet, 10 events');
  });

  it('keeps the most recently decided running executions, none finished', () => {
    const states = new ExecutionStates({ cacheSize: 2 });
    states.remember('a', 'w1', 1, state('a'));
    states.remember('b', 'w2', 1, state('b'));
    states.remember('a', 'w3', 2, state('a'));
    states.remember('c', 'w4', 1, state('c'));
    assert.equal(states.size, 2, 'b, the least recently decided, was dropped');
    states.remember('c', 'w5', 2, state('c', 'completed'));
    assert.equal(states.size, 1, 'a finished execution leaves the cache');
    const off = new ExecutionStates({ cacheSize: 0 });
    off.remember('a', 'w1', 1, state('a'));
    assert.equal(off.size, 0);
  });

  it('refuses settings that cannot work, naming them', () => {
    assert.throws(() => new ExecutionStates({ snapshotEvery: 0 }), /snapshotEvery must be an integer >= 1, got 0/);
    assert.throws(() => new ExecutionStates({ cacheSize: -1 }), /cacheSize must be an integer >= 0, got -1/);
    const env = { SOUS_DATABASE_URL: 'postgres://u@h:5432/d', SOUS_KAFKA_BROKERS: 'h:9092' };
    const config = loadEnvironmentConfig(env);
    assert.deepEqual([config.stateCacheSize, config.stateSnapshotEvery], [10_000, 128]);
    const set = loadEnvironmentConfig({ ...env, SOUS_STATE_CACHE_SIZE: '0', SOUS_STATE_SNAPSHOT_EVERY: '16' });
    assert.deepEqual([set.stateCacheSize, set.stateSnapshotEvery], [0, 16]);
    assert.throws(
      () => loadEnvironmentConfig({ ...env, SOUS_STATE_SNAPSHOT_EVERY: '0' }),
      (e: unknown) => e instanceof ConfigInvalidError && /SOUS_STATE_SNAPSHOT_EVERY must be at least 1/.test(e.message),
    );
    assert.throws(
      () => loadEnvironmentConfig({ ...env, SOUS_STATE_CACHE_SIZE: 'lots' }),
      /SOUS_STATE_CACHE_SIZE must be a whole number/,
    );
  });
});
