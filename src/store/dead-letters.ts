import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** A dead letter as stored in sous.dead_letter. */
export interface DeadLetterRow {
  readonly id: string;
  readonly dlt_topic: string;
  readonly dlt_partition: number;
  readonly dlt_offset: string;
  readonly original_topic: string;
  readonly original_partition: number | null;
  readonly original_offset: string | null;
  readonly message_key: string | null;
  readonly headers: Record<string, string>;
  readonly payload: unknown;
  readonly payload_text: string | null;
  readonly error_class: string;
  readonly error_code: string;
  readonly error_message: string;
  readonly error_stack: string | null;
  readonly consumer_group: string | null;
  readonly attempts: number | null;
  readonly failed_at: string | null;
  readonly capability: string | null;
  readonly execution_id: string | null;
  readonly step_key: string | null;
  readonly step_execution_id: string | null;
  readonly idempotency_key: string | null;
  readonly status: 'pending' | 'reprocessed' | 'discarded';
}

/** Stores a dead letter unless its DLT topic, partition and offset are stored already; true when stored. */
export async function insertDeadLetter(db: Kysely<Database>, row: Omit<DeadLetterRow, 'status'>): Promise<boolean> {
  const { rows } = await sql`
    INSERT INTO sous.dead_letter (id, dlt_topic, dlt_partition, dlt_offset, original_topic, original_partition,
      original_offset, message_key, headers, payload, payload_text, error_class, error_code, error_message, error_stack,
      consumer_group, attempts, failed_at, capability, execution_id, step_key, step_execution_id, idempotency_key)
    VALUES (${row.id}, ${row.dlt_topic}, ${row.dlt_partition}, ${row.dlt_offset}, ${row.original_topic},
      ${row.original_partition}, ${row.original_offset}, ${row.message_key}, ${JSON.stringify(row.headers)}::jsonb,
      ${JSON.stringify(row.payload)}::jsonb, ${row.payload_text}, ${row.error_class}, ${row.error_code},
      ${row.error_message}, ${row.error_stack}, ${row.consumer_group}, ${row.attempts}, ${row.failed_at},
      ${row.capability}, ${row.execution_id}, ${row.step_key}, ${row.step_execution_id}, ${row.idempotency_key})
    ON CONFLICT (dlt_topic, dlt_partition, dlt_offset) DO NOTHING RETURNING 1`.execute(db);
  return rows.length > 0;
}

/** The status of each of these dead letters that exists, by (lower-case) id. */
export async function selectDeadLetterStatuses(
  db: Kysely<Database>,
  ids: readonly string[],
): Promise<Map<string, string>> {
  const { rows } = await sql<{ id: string; status: string }>`
    SELECT id, status FROM sous.dead_letter
    WHERE id IN (SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)::uuid)`.execute(db);
  return new Map(rows.map((r) => [r.id, r.status]));
}

/** A filter over pending dead letters; an absent field matches every letter. */
export interface PendingDeadLetterFilter {
  readonly capability?: string;
  readonly errorCode?: string;
  readonly originalTopic?: string;
  readonly executionId?: string;
}

/** Ids of the pending dead letters the filter matches, oldest first. */
export async function selectPendingDeadLetters(
  db: Kysely<Database>,
  filter: PendingDeadLetterFilter,
): Promise<string[]> {
  const { rows } = await sql<{ id: string }>`
    SELECT id FROM sous.dead_letter
    WHERE status = 'pending'
      AND (${filter.capability ?? null}::text IS NULL OR capability = ${filter.capability ?? null})
      AND (${filter.errorCode ?? null}::text IS NULL OR error_code = ${filter.errorCode ?? null})
      AND (${filter.originalTopic ?? null}::text IS NULL OR original_topic = ${filter.originalTopic ?? null})
      AND (${filter.executionId ?? null}::uuid IS NULL OR execution_id = ${filter.executionId ?? null})
    ORDER BY ingested_at, dlt_offset`.execute(db);
  return rows.map((r) => r.id);
}

/** Locks one dead letter for an operator action; undefined when there is none. */
export async function lockDeadLetter(trx: Kysely<Database>, id: string): Promise<DeadLetterRow | undefined> {
  const { rows } = await sql<DeadLetterRow>`SELECT * FROM sous.dead_letter WHERE id = ${id} FOR UPDATE`.execute(trx);
  return rows[0];
}

/** Marks a dead letter reprocessed by `actor`, with what the reprocessing did. */
export async function markDeadLetterReprocessed(
  trx: Kysely<Database>,
  id: string,
  actor: string,
  outcome: unknown,
): Promise<void> {
  await sql`
    UPDATE sous.dead_letter SET status = 'reprocessed', resolved_at = now(), resolved_by = ${actor},
      reprocess_count = reprocess_count + 1, outcome = ${JSON.stringify(outcome)}::jsonb
    WHERE id = ${id}`.execute(trx);
}

/** Marks pending dead letters discarded by `actor`; returns the ids it marked. */
export async function markDeadLettersDiscarded(
  db: Kysely<Database>,
  ids: readonly string[],
  actor: string,
): Promise<string[]> {
  if (ids.length === 0) return [];
  const { rows } = await sql<{ id: string }>`
    UPDATE sous.dead_letter SET status = 'discarded', resolved_at = now(), resolved_by = ${actor},
      outcome = '{"discarded": true}'::jsonb
    WHERE id IN (SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)::uuid) AND status = 'pending'
    RETURNING id`.execute(db);
  return rows.map((r) => r.id);
}
