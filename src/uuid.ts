import { randomFillSync } from 'node:crypto';
import { v7 } from 'uuid';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `text` is a UUID (any version), as PostgreSQL's uuid type takes it. */
export function isUuid(text: string): boolean {
  return UUID.test(text);
}

/** Random bytes for this many ids are drawn at once (see newId). */
const IDS_PER_DRAW = 256;
const pool = new Uint8Array(16 * IDS_PER_DRAW);
let drawn = IDS_PER_DRAW;

/**
 * A new id for a row the engine writes: a UUIDv7, whose first 48 bits are the time in
 * milliseconds. Rows written one after another get ids that sort after each other (ids
 * of one millisecond land on the same index page, in random order), so every B-tree keyed
 * by them (execution, events, steps, attempts, reply ids) grows at its right edge instead
 * of touching a random leaf page per insert, which is what a random (v4) id costs in index
 * pages dirtied, WAL full-page images and cache. The ids stay unguessable enough for what
 * they are: 74 random bits from the system's CSPRNG, and no secret rests on them.
 * `uuid` rather than node:crypto's randomUUIDv7, which only Node ≥ 24.16 has. The random
 * bytes come from a pool filled 256 ids at a time: `uuid` asks the CSPRNG for 16 bytes per
 * id, which was 6 % of the control plane's CPU at saturation (the worker's too).
 */
export function newId(): string {
  if (drawn === IDS_PER_DRAW) {
    randomFillSync(pool);
    drawn = 0;
  }
  const random = pool.subarray(16 * drawn, 16 * (drawn + 1));
  drawn++;
  return v7({ random, msecs: Date.now() });
}
