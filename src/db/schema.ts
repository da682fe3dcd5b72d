import type { ColumnType, Generated } from 'kysely';

export type Json = ColumnType<unknown, string, string>;

/** sous.outbox (migrations/0001_outbox.sql). */
export interface OutboxTable {
  id: string;
  aggregate_type: string;
  aggregate_id: string;
  event_type: string;
  topic: string;
  payload: Json;
  traceparent: string | null;
  correlation_id: string | null;
  idempotency_key: string | null;
  headers: Generated<Json>;
  created_at: Generated<Date>;
}

/** Tables of the sous schema, for Kysely. */
export interface Database {
  'sous.outbox': OutboxTable;
}
