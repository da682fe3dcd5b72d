import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** A claim-check payload: the data stays in PostgreSQL, the message carries `id`. */
export interface PayloadRow {
  readonly id: string;
  readonly executionId: string;
  /** The data as JSON text. */
  readonly data: string;
  readonly bytes: number;
}

/** Stores claim-check payloads in one statement. */
export async function insertPayloads(trx: Kysely<Database>, rows: readonly PayloadRow[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`
    INSERT INTO sous.payload (id, execution_id, data, bytes)
    SELECT * FROM unnest(${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.executionId)}::uuid[],
      ${rows.map((r) => r.data)}::jsonb[], ${rows.map((r) => r.bytes)}::int[])`.execute(trx);
}
