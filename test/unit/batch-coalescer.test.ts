import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createBatchCoalescer } from '../../src/control-plane/batch-coalescer.js';

/** A deferred result an application can be held on. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe('batch coalescer', () => {
  it('applies a lone submission at once, alone', async () => {
    const applied: number[][] = [];
    const c = createBatchCoalescer<number, number>({
      apply: async (items) => {
        applied.push([...items]);
        return items.length;
      },
    });
    assert.equal(await c.submit([1, 2]), 2);
    assert.deepEqual(applied, [[1, 2]]);
  });

  it('gathers what is submitted while the in-flight applications run into the next one, in order', async () => {
    const applied: string[][] = [];
    const first = gate();
    const c = createBatchCoalescer<string, number>({
      maxInFlight: 1,
      apply: async (items) => {
        applied.push([...items]);
        if (applied.length === 1) await first.opened;
        return applied.length;
      },
    });
    const a = c.submit(['a1']);
    await new Promise((r) => setImmediate(r)); // a is running
    const b = c.submit(['b1', 'b2']);
    const d = c.submit(['d1']);
    first.open();
    assert.deepEqual(await Promise.all([a, b, d]), [1, 2, 2]);
    assert.deepEqual(applied, [['a1'], ['b1', 'b2', 'd1']]);
  });

  it('runs up to maxInFlight applications at once and never splits a submission past maxItems', async () => {
    let running = 0;
    let most = 0;
    const sizes: number[] = [];
    const c = createBatchCoalescer<number, undefined>({
      maxInFlight: 2,
      maxItems: 5,
      apply: async (items) => {
        running++;
        most = Math.max(most, running);
        sizes.push(items.length);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return undefined;
      },
    });
    await Promise.all([c.submit([1, 2, 3]), c.submit([4, 5, 6]), c.submit([7]), c.submit([8, 9, 10, 11, 12, 13])]);
    assert.equal(most, 2);
    assert.deepEqual(sizes, [3, 4, 6], 'a submission larger than maxItems still goes whole, alone');
  });

  it('rejects exactly the submissions of the application that failed', async () => {
    const c = createBatchCoalescer<string, string>({
      maxInFlight: 1,
      apply: async (items) => {
        if (items.includes('bad')) throw new Error('poisoned batch');
        return items.join(',');
      },
    });
    const results = await Promise.allSettled([c.submit(['x', 'bad']), c.submit(['y'])]);
    assert.equal(results[0].status, 'rejected');
    assert.equal(results[1].status, 'rejected', 'y shared the failing application (submitted in the same tick)');
    assert.equal(await c.submit(['z']), 'z', 'the next application is unaffected');
    await c.drain();
  });
});
