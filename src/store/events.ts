import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { EngineEvent } from '../engine/events.js';

/** Events a decision appends to one execution's log, numbered from `firstSeq`. */
export interface EventAppend {
  readonly executionId: string;
  readonly firstSeq: number;
  readonly events: readonly EngineEvent[];
}

/** Appends the events of any number of executions in one statement. */
export async function appendEvents(trx: Kysely<Database>, appends: readonly EventAppend[]): Promise<void> {
  const rows = appends.flatMap(({ executionId, firstSeq, events }) =>
    events.map((event, i) => ({ execution_id: executionId, seq: firstSeq + i, type: event.type, data: event })),
  );
  if (rows.length === 0) return;
  await sql`/* sous:appendEvents */
    INSERT INTO sous.execution_event (execution_id, seq, type, data, created_at)
    SELECT execution_id, seq, type, data, (data->>'at')::timestamptz
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(execution_id uuid, seq int, type text, data jsonb)`.execute(
    trx,
  );
}

/** An execution's event log, oldest first. */
export async function selectEvents(db: Kysely<Database>, executionId: string): Promise<EngineEvent[]> {
  const rows = await db
    .selectFrom('sous.execution_event')
    .select('data')
    .where('execution_id', '=', executionId)
    .orderBy('seq')
    .execute();
  return rows.map((r) => r.data as EngineEvent);
}
