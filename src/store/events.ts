import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../db/schema.js';
import type { EngineEvent } from '../engine/events.js';

/** Events a decision appends to one execution's log, numbered from `firstSeq`. */
export interface EventAppend {
  readonly executionId: string;
  readonly firstSeq: number;
  readonly events: readonly EngineEvent[];
}

/**
 * `at` as `Date.prototype.toISOString` writes it (a four-digit year, milliseconds, UTC):
 * the only form `eventJson` gives back exactly from the created_at column.
 */
function isCanonicalInstant(at: string): boolean {
  return /^\d{4}-/.test(at) && !Number.isNaN(Date.parse(at)) && new Date(at).toISOString() === at;
}

/**
 * SQL for an event's whole JSON, from a row of sous.execution_events() under `alias`:
 * `type` and `at` from the columns, under what `data` holds, which wins (a batch's event
 * holds its type, and its `at` when that is not the batch's; rows written before 0023
 * hold the rest of the event, and rows from before type and `at` had columns, all of it).
 * The inverse of `storedBatch`; `at` in toISOString's form (created_at holds milliseconds).
 */
export function eventJson(alias: 'v' | 'e'): RawBuilder<unknown> {
  const column = (name: string) => sql.ref(`${alias}.${name}`);
  return sql`(jsonb_build_object('type', ${column('type')}, 'at',
    to_char(${column('created_at')} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) || ${column('data')}::jsonb)`;
}

/** A batch's events as one sous.execution_event_batch row stores them (0023). */
export interface StoredBatch {
  /** The first event's time: the row's created_at. */
  readonly at: string;
  readonly events: readonly Record<string, unknown>[];
}

/**
 * How a batch is stored: the time of the first event in `created_at`, and each event whole
 * but its `at` when that is the first's (in toISOString's form, the only one `eventJson`
 * gives back exactly from the column). One row per decision instead of one per event: a
 * row header and a key entry fewer per event after the first.
 */
export function storedBatch(events: readonly EngineEvent[]): StoredBatch {
  const first = events[0];
  if (first === undefined) throw new RangeError('an event batch holds one event or more');
  const shared = isCanonicalInstant(first.at) ? first.at : undefined;
  return {
    at: first.at,
    events: events.map((event): Record<string, unknown> => {
      if (event.at !== shared) return { ...event };
      const { at: _at, ...rest } = event;
      return rest;
    }),
  };
}

/** Appends the events of any number of executions in one statement: a row per execution. */
export async function appendEvents(trx: Kysely<Database>, appends: readonly EventAppend[]): Promise<void> {
  const rows = appends
    .filter(({ events }) => events.length > 0)
    .map(({ executionId, firstSeq, events }) => {
      const { at, events: stored } = storedBatch(events);
      return {
        execution_id: executionId,
        first_seq: firstSeq,
        last_seq: firstSeq + events.length - 1,
        at,
        events: stored,
      };
    });
  if (rows.length === 0) return;
  // json_to_recordset keeps each array's text as written: no jsonb round trip.
  await sql`/* sous:appendEvents */
    INSERT INTO sous.execution_event_batch (execution_id, first_seq, last_seq, created_at, events)
    SELECT execution_id, first_seq, last_seq, at, events
    FROM json_to_recordset(${JSON.stringify(rows)}::json)
      AS r(execution_id uuid, first_seq int, last_seq int, at timestamptz, events json)`.execute(trx);
}

/** The largest seq: `upto` of sous.execution_events for "to the end". */
export const LAST_SEQ = 2_147_483_647;

/** An execution's event log, oldest first. */
export async function selectEvents(db: Kysely<Database>, executionId: string): Promise<EngineEvent[]> {
  const { rows } = await sql<{ event: EngineEvent }>`/* sous:selectEvents */
    SELECT ${eventJson('e')} AS event FROM sous.execution_events(${executionId}, 0, ${LAST_SEQ}) e
    ORDER BY e.seq`.execute(db);
  return rows.map((r) => r.event);
}
