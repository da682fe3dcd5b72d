// How a decision's events are stored as one row (0023): the first event's time in the
// row's column, and each event whole but for an `at` the column already says.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EngineEvent } from '../../src/engine/events.js';
import { storedBatch } from '../../src/store/events.js';

const signal = (at: string, name: string) => ({ type: 'SignalReceived', at, name, payload: null }) as EngineEvent;

describe('storedBatch', () => {
  it("leaves out each event's at when it is the first's, in toISOString's form", () => {
    const at = '2026-11-30T10:00:00.123Z';
    assert.deepEqual(storedBatch([signal(at, 'a'), signal(at, 'b')]), {
      at,
      events: [
        { type: 'SignalReceived', name: 'a', payload: null },
        { type: 'SignalReceived', name: 'b', payload: null },
      ],
    });
  });

  it('keeps an at that differs from the first, or that the column could not give back as written', () => {
    const first = '2026-11-30T10:00:00.123Z';
    const later = '2026-11-30T10:00:00.456Z';
    assert.deepEqual(
      storedBatch([signal(first, 'a'), signal(later, 'b')]).events.map((e) => e.at),
      [undefined, later],
    );
    // Without milliseconds, or with an offset: the same instant, another text.
    for (const odd of ['2026-11-30T10:00:00Z', '2026-11-30T10:00:00.000+00:00']) {
      const stored = storedBatch([signal(odd, 'a'), signal(odd, 'b')]);
      assert.equal(stored.at, odd);
      assert.deepEqual(
        stored.events.map((e) => e.at),
        [odd, odd],
      );
    }
  });

  it('keeps the type in every event and refuses an empty batch', () => {
    const at = new Date().toISOString();
    const stored = storedBatch([signal(at, 'a')]);
    assert.deepEqual(
      stored.events.map((e) => e.type),
      ['SignalReceived'],
    );
    assert.throws(() => storedBatch([]), RangeError);
  });
});
