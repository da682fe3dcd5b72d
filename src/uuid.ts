import { v7 } from 'uuid';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `text` is a UUID (any version), as PostgreSQL's uuid type takes it. */
export function isUuid(text: string): boolean {
  return UUID.test(text);
}

/**
 * A new id for a row the engine writes: a UUIDv7, whose first 48 bits are the time in
 * milliseconds. Rows written one after another get ids that sort after each other, so
 * every B-tree keyed by them (execution, events, steps, attempts, outbox, reply ids) grows
 * at its right edge instead of touching a random leaf page per insert, which is what a
 * random (v4) id costs in index pages dirtied, WAL full-page images and cache. The ids stay
 * unguessable enough for what they are: 74 random bits, and no secret rests on them.
 * `uuid` rather than node:crypto's randomUUIDv7, which only Node ≥ 24.16 has.
 */
export function newId(): string {
  return v7();
}
