// How the reply consumer cuts a fetched batch into chunks (one transaction each).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chunkEnd } from '../../src/kafka/json-consumer.js';

const records = (keys: readonly (string | null)[]) => keys.map((k) => ({ key: k === null ? null : Buffer.from(k) }));

/** Chunk sizes of a whole batch. */
function chunks(keys: readonly (string | null)[], maxBatch: number, maxSameKey: number): number[] {
  const messages = records(keys);
  const sizes: number[] = [];
  for (let start = 0; start < messages.length;) {
    const end = chunkEnd(messages, start, maxBatch, maxSameKey);
    sizes.push(end - start);
    start = end;
  }
  return sizes;
}

describe('reply chunks', () => {
  it('cut distinct keys at maxBatch', () => {
    assert.deepEqual(chunks(['a', 'b', 'c', 'd', 'e'], 2, 20), [2, 2, 1]);
  });

  it('let one hot key fill a chunk up to maxSameKey', () => {
    assert.deepEqual(
      chunks(
        Array.from({ length: 25 }, () => 'hot'),
        2,
        10,
      ),
      [10, 10, 5],
    );
  });

  it('stop at the first record of a new key once full, keeping offset order', () => {
    assert.deepEqual(chunks(['a', 'b', 'a', 'b', 'c', 'a', 'a'], 2, 10), [4, 3]);
  });

  it('count records without a key as keys of their own', () => {
    assert.deepEqual(chunks([null, null, null], 2, 10), [2, 1]);
  });

  it('are plain maxBatch chunks when maxSameKey is maxBatch', () => {
    assert.deepEqual(chunks(['x', 'x', 'x', 'x', 'x'], 2, 2), [2, 2, 1]);
  });
});
