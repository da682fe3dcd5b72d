import { newId } from '../uuid.js';
import type { Transaction } from 'kysely';
import { OutboxMessageInvalidError, OutboxNotInTransactionError } from '../errors.js';
import { nulPath } from '../nul-path.js';
import { insertOutboxRows, type OutboxRow } from '../store/outbox.js';
import { type OutboxMessage, outboxMessageSchema } from './outbox-message.js';

export type { OutboxRow } from '../store/outbox.js';

export interface WriteOutboxOptions {
  /**
   * Largest serialised payload accepted, in bytes. A record Kafka refuses would stop the
   * connector for every row behind it, so oversized payloads are refused here instead
   * (large data goes by reference). @default 524288 (512 KiB)
   */
  readonly maxPayloadBytes?: number;
}

export const DEFAULT_MAX_PAYLOAD_BYTES = 512 * 1024;

/**
 * The payload as JSON text, or OutboxMessageInvalidError when it has none (a cycle, a
 * bigint) or holds a NUL character (`\u0000`), which jsonb refuses: the error is raised
 * before any statement runs, so the caller's transaction stays usable.
 */
function serialisePayload(payload: unknown, index: number): string {
  let text: string;
  try {
    text = JSON.stringify(payload);
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new OutboxMessageInvalidError(
      `invalid outbox message: messages.${index}.payload is not JSON-serialisable (${reason})`,
      { cause: error },
    );
  }
  // Serialisable, so acyclic: nulPath can walk it.
  const path = nulPath(payload);
  if (path !== undefined) {
    throw new OutboxMessageInvalidError(
      `invalid outbox message: messages.${index}.payload holds a NUL character (\\u0000) at key ${JSON.stringify(String(path.at(-1) ?? ''))}, which PostgreSQL cannot store`,
    );
  }
  return text;
}

/**
 * The row of a message whose payload is already JSON text, refused (as `messages.<index>`)
 * when that text is larger than `maxPayloadBytes`: a record Kafka refuses would stop the
 * connector for every row behind it.
 */
function sizeCheckedRow(
  message: Omit<OutboxMessage, 'payload'>,
  payload: string,
  index: number,
  maxPayloadBytes: number,
): OutboxRow {
  const size = Buffer.byteLength(payload);
  if (size > maxPayloadBytes) {
    throw new OutboxMessageInvalidError(
      `invalid outbox message: messages.${index}.payload is ${size} bytes, more than the ${maxPayloadBytes} allowed; pass large data by reference`,
    );
  }
  return {
    id: message.id ?? newId(),
    aggregateType: message.aggregateType,
    key: message.key,
    eventType: message.eventType,
    topic: message.topic,
    payload,
    headers: JSON.stringify(message.headers ?? {}),
    traceparent: message.traceparent ?? null,
    correlationId: message.correlationId ?? null,
    idempotencyKey: message.idempotencyKey ?? null,
  };
}

/**
 * The row of a message sous built itself (a step command, a child's end): its shape is
 * right by construction, so it is not validated again; only the payload size is checked.
 * The payload is JSON text.
 */
export function builtOutboxRow(message: Omit<OutboxMessage, 'payload'> & { readonly payload: string }): OutboxRow {
  return sizeCheckedRow(message, message.payload, 0, DEFAULT_MAX_PAYLOAD_BYTES);
}

/**
 * Validates messages and turns them into rows, assigning ids where missing. Throws
 * OutboxMessageInvalidError listing every problem of the first bad message, by path.
 */
export function toOutboxRows(messages: readonly OutboxMessage[], options: WriteOutboxOptions = {}): OutboxRow[] {
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  return messages.map((message, index) => {
    const parsed = outboxMessageSchema.safeParse(message);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${['messages', index, ...i.path].join('.')}: ${i.message}`);
      throw new OutboxMessageInvalidError(`invalid outbox message: ${problems.join('; ')}`, { cause: parsed.error });
    }
    return sizeCheckedRow(parsed.data, serialisePayload(parsed.data.payload, index), index, maxPayloadBytes);
  });
}

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
  // The type already demands a transaction; this guards callers from plain JavaScript.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
  if (!trx.isTransaction) {
    throw new OutboxNotInTransactionError(
      'writeOutbox needs a transaction (db.transaction().execute(trx => writeOutbox(trx, ...))): outside one the messages would not commit with the state change',
    );
  }
  const rows = toOutboxRows(messages, options);
  await insertOutboxRows(trx, rows);
  return rows.map((r) => r.id);
}
