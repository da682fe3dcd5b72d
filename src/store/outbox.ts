import { sql, type Kysely } from 'kysely';

/** One outbox row, columns as text ready for the INSERT (payload and headers as JSON text). */
export interface OutboxRow {
  readonly id: string;
  readonly aggregateType: string;
  readonly key: string;
  readonly eventType: string;
  readonly topic: string;
  readonly payload: string;
  readonly headers: string;
  readonly traceparent: string | null;
  readonly correlationId: string | null;
  readonly idempotencyKey: string | null;
}

/**
 * Inserts outbox rows and deletes them again, in the caller's transaction: Debezium
 * streams the insert from the WAL and the table stays empty. Two statements for any
 * number of rows (arrays unnested server-side). Works in any database holding the
 * sous schema, whatever the caller's Kysely type.
 */
export async function insertOutboxRows<DB>(trx: Kysely<DB>, rows: readonly OutboxRow[]): Promise<void> {
  if (rows.length === 0) return;
  const column = <K extends keyof OutboxRow>(name: K) => rows.map((r) => r[name]);
  const inserted = await sql<{ ctid: string }>`/* sous:insertOutboxRows */
    INSERT INTO sous.outbox
      (id, aggregate_type, aggregate_id, event_type, topic, payload, headers, traceparent, correlation_id, idempotency_key)
    SELECT * FROM unnest(
      ${column('id')}::uuid[], ${column('aggregateType')}::text[], ${column('key')}::text[], ${column('eventType')}::text[],
      ${column('topic')}::text[], ${column('payload')}::json[], ${column('headers')}::jsonb[],
      ${column('traceparent')}::text[], ${column('correlationId')}::text[], ${column('idempotencyKey')}::text[]
    )
    RETURNING ctid::text AS ctid`.execute(trx);
  // By physical address: the rows were inserted by this transaction, so nothing else can
  // have moved them, and the table needs no index (0011_fewer_index_entries.sql).
  const ctids = inserted.rows.map((r) => r.ctid);
  await sql`/* sous:deleteOutboxRows */ DELETE FROM sous.outbox WHERE ctid = ANY(${ctids}::tid[])`.execute(trx);
}
