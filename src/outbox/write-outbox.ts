import { randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import { OutboxMessageInvalidError, OutboxNotInTransactionError } from '../errors.js';
import { type OutboxMessage, outboxMessageSchema } from './outbox-message.js';

export interface WriteOutboxOptions {
  /**
   * Largest serialised payload accepted, in bytes. A row Kafka refuses would stop the
   * connector for every row behind it, so oversized payloads are refused here instead
   * (large data goes by reference). @default 524288 (512 KiB)
   */
  readonly maxPayloadBytes?: number;
}

export const DEFAULT_MAX_PAYLOAD_BYTES = 512 * 1024;

/**
 * Writes messages to the outbox inside the caller's transaction, so they reach Kafka if
 * and only if that transaction commits. Rows are inserted and deleted again in the same
 * transaction: Debezium streams the insert from the WAL and the table stays empty.
 * Validates every message before writing any; returns the row ids (the `id` Kafka header).
 */
export async function writeOutbox<DB>(
  trx: Transaction<DB>,
  messages: readonly OutboxMessage[],
  options: WriteOutboxOptions = {},
): Promise<string[]> {
  if (!trx.isTransaction) {
    throw new OutboxNotInTransactionError(
      'writeOutbox needs a transaction (db.transaction().execute(trx => writeOutbox(trx, ...))): outside one the messages would not commit with the state change',
    );
  }
  if (messages.length === 0) return [];
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const rows = messages.map((message, index) => {
    const parsed = outboxMessageSchema.safeParse(message);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${['messages', index, ...i.path].join('.')}: ${i.message}`);
      throw new OutboxMessageInvalidError(`invalid outbox message: ${problems.join('; ')}`, { cause: parsed.error });
    }
    const m = parsed.data;
    const payload = JSON.stringify(m.payload);
    const size = Buffer.byteLength(payload);
    if (size > maxPayloadBytes) {
      throw new OutboxMessageInvalidError(
        `invalid outbox message: messages.${index}.payload is ${size} bytes, more than the ${maxPayloadBytes} allowed; pass large data by reference`,
      );
    }
    return {
      id: m.id ?? randomUUID(),
      aggregateType: m.aggregateType,
      key: m.key,
      eventType: m.eventType,
      topic: m.topic,
      payload,
      headers: JSON.stringify(m.headers ?? {}),
      traceparent: m.traceparent ?? null,
      correlationId: m.correlationId ?? null,
      idempotencyKey: m.idempotencyKey ?? null,
    };
  });
  const ids = rows.map((r) => r.id);
  // One statement for any number of rows: arrays unnested server-side.
  await sql`
    INSERT INTO sous.outbox
      (id, aggregate_type, aggregate_id, event_type, topic, payload, headers, traceparent, correlation_id, idempotency_key)
    SELECT * FROM unnest(
      ${ids}::uuid[], ${rows.map((r) => r.aggregateType)}::text[], ${rows.map((r) => r.key)}::text[],
      ${rows.map((r) => r.eventType)}::text[], ${rows.map((r) => r.topic)}::text[], ${rows.map((r) => r.payload)}::jsonb[],
      ${rows.map((r) => r.headers)}::jsonb[], ${rows.map((r) => r.traceparent)}::text[],
      ${rows.map((r) => r.correlationId)}::text[], ${rows.map((r) => r.idempotencyKey)}::text[]
    )`.execute(trx);
  await sql`DELETE FROM sous.outbox WHERE id = ANY(${ids}::uuid[])`.execute(trx);
  return ids;
}
