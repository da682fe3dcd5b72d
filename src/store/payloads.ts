import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/*
 * Claim-check payloads, in sous_payload.payload (0016): a schema of their own, which
 * workers reach with the role sous_payload_worker and nothing else of sous.
 */

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
    INSERT INTO sous_payload.payload (id, execution_id, data, bytes)
    SELECT * FROM unnest(${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.executionId)}::uuid[],
      ${rows.map((r) => r.data)}::jsonb[], ${rows.map((r) => r.bytes)}::int[])`.execute(trx);
}

/** The data of the payloads that exist among `ids`, by id (lower case). */
export async function selectPayloads(db: Kysely<Database>, ids: readonly string[]): Promise<Map<string, unknown>> {
  if (ids.length === 0) return new Map();
  const { rows } = await sql<{ id: string; data: unknown }>`
    SELECT id, data FROM sous_payload.payload WHERE id = ANY(${[...ids]}::uuid[])`.execute(db);
  return new Map(rows.map((r) => [r.id, r.data]));
}
