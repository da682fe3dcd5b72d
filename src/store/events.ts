import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../db/schema.js';
import type { EngineEvent } from '../engine/events.js';

/** Events a decision appends to one execution's log, numbered from `firstSeq`. */
export interface EventAppend {
  readonly executionId: string;
  readonly firstSeq: number;
  readonly events: readonly EngineEvent[];
}

/** An event as its row stores it: `type` and `at` in their columns, the rest in `data`. */
export interface StoredEvent {
  readonly type: string;
  readonly at: string;
  readonly data: Record<string, unknown>;
}

/**
 * `at` as `Date.prototype.toISOString` writes it (a four-digit year, milliseconds, UTC):
 * the only form `eventJson` gives back exactly from the created_at column.
 */
function isCanonicalInstant(at: string): boolean {
  return /^\d{4}-/.test(at) && !Number.isNaN(Date.parse(at)) && new Date(at).toISOString() === at;
}

/**
 * How an event is stored. Every event's `type` and `at` are already the row's `type` and
 * `created_at` columns, so `data` leaves them out: about 60 bytes of every row, in the
 * table and in the WAL, on the hot path (two events per step). An `at` in any other form
 * than toISOString's stays in `data` too, so reading gives back exactly what was written.
 * Rows written before this (with both in `data`) read the same.
 */
export function storedEvent(event: EngineEvent): StoredEvent {
  const { type, at, ...rest } = event;
  return { type, at, data: isCanonicalInstant(at) ? rest : { at, ...rest } };
}

/**
 * SQL for an event's whole JSON, from its row under `alias`: `type` and `at` from the
 * columns, under what `data` holds (which wins: rows from before `storedEvent` have both).
 * The inverse of `storedEvent`; `at` in toISOString's form (created_at holds milliseconds).
 */
export function eventJson(alias: 'v' | 'e'): RawBuilder<unknown> {
  const column = (name: string) => sql.ref(`${alias}.${name}`);
  return sql`(jsonb_build_object('type', ${column('type')}, 'at',
    to_char(${column('created_at')} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) || ${column('data')}::jsonb)`;
}

/** Appends the events of any number of executions in one statement. */
export async function appendEvents(trx: Kysely<Database>, appends: readonly EventAppend[]): Promise<void> {
  const rows = appends.flatMap(({ executionId, firstSeq, events }) =>
    events.map((event, i) => ({ execution_id: executionId, seq: firstSeq + i, ...storedEvent(event) })),
  );
  if (rows.length === 0) return;
  await sql`/* sous:appendEvents */
    INSERT INTO sous.execution_event (execution_id, seq, type, data, created_at)
    SELECT execution_id, seq, type, data, at
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
      AS r(execution_id uuid, seq int, type text, data jsonb, at timestamptz)`.execute(trx);
}

/** An execution's event log, oldest first. */
export async function selectEvents(db: Kysely<Database>, executionId: string): Promise<EngineEvent[]> {
  const { rows } = await sql<{ event: EngineEvent }>`/* sous:selectEvents */
    SELECT ${eventJson('e')} AS event FROM sous.execution_event e
    WHERE e.execution_id = ${executionId} ORDER BY e.seq`.execute(db);
  return rows.map((r) => r.event);
}
