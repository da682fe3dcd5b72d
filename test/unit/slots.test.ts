// The worker's slot semaphore: first come first served, and a waiter that gives up never leaks a slot.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Slots } from '../../src/kafka/slots.js';

describe('Slots', () => {
  it('grants up to its size at once, then hands released slots to waiters in order', async () => {
    const slots = new Slots(2);
    assert.equal(slots.acquire().granted, true);
    assert.equal(slots.acquire().granted, true);
    const first = slots.acquire();
    const second = slots.acquire();
    assert.ok(!first.granted && !second.granted);
    const order: string[] = [];
    void first.promise.then(() => order.push('first'));
    void second.promise.then(() => order.push('second'));
    slots.release();
    await Promise.resolve();
    await Promise.resolve();
    assert.deepEqual(order, ['first']);
    slots.release();
    await second.promise;
    assert.deepEqual(order, ['first', 'second']);
  });

  it('skips a waiter that gave up, and takes back a slot handed to one that gave up late', async () => {
    const slots = new Slots(1);
    assert.equal(slots.acquire().granted, true);
    const quitter = slots.acquire();
    const patient = slots.acquire();
    assert.ok(!quitter.granted && !patient.granted);
    assert.equal(quitter.cancel(), false);
    slots.release();
    await patient.promise; // the slot skipped the quitter
    const late = slots.acquire();
    assert.ok(!late.granted);
    slots.release(); // handed to late…
    late.cancel(); // …which gives up anyway: the slot comes back
    assert.equal(slots.acquire().granted, true, 'no slot leaked');
  });
});
