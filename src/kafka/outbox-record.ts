import type { IHeaders, KafkaMessage } from 'kafkajs';
import { MalformedRecordError } from '../errors.js';
import { isUuid } from '../uuid.js';

/** A Kafka record produced by Debezium's Outbox Event Router from one sous.outbox row. */
export interface OutboxRecord {
  /** The outbox row id (Kafka header `id`): the same on a redelivered duplicate. */
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** Kafka key: the row's aggregate_id. */
  readonly key: string;
  readonly eventType: string;
  readonly aggregateType: string;
  readonly traceparent: string | undefined;
  readonly correlationId: string | undefined;
  readonly idempotencyKey: string | undefined;
  /** The row's extra string headers. */
  readonly headers: Readonly<Record<string, string>>;
  /** The row's payload, parsed from JSON. Validate it before use. */
  readonly payload: unknown;
  /** Kafka record timestamp, in ms since the epoch. */
  readonly timestamp: number;
}

/** Kafka header names the outbox connector writes (connectors/outbox-connector.json). */
export const OUTBOX_HEADERS = {
  id: 'id',
  eventType: 'sous-event-type',
  aggregateType: 'sous-aggregate-type',
  traceparent: 'traceparent',
  correlationId: 'sous-correlation-id',
  idempotencyKey: 'sous-idempotency-key',
  extra: 'sous-headers',
} as const;

/**
 * Decodes and checks one record. Throws MalformedRecordError naming what is wrong (and
 * where the record sits) when it is not what the outbox router produces.
 */
export function decodeOutboxRecord(topic: string, partition: number, message: KafkaMessage): OutboxRecord {
  const where = { topic, partition, offset: message.offset };
  const fail = (reason: string, cause?: unknown): never => {
    throw new MalformedRecordError(`malformed outbox record: ${reason}`, where, { cause });
  };
  const headers = message.headers ?? {};
  const header = (name: string, required: boolean): string | undefined => {
    // kafkajs types omit it, but a header written with a null value decodes as null.
    const value = headers[name] as IHeaders[string] | null;
    if (Array.isArray(value)) return fail(`header ${name} appears ${value.length} times`);
    if (value === undefined || value === null) {
      return required ? fail(`header ${name} is missing`) : undefined;
    }
    const text = value.toString('utf8');
    if (required && text === '') fail(`header ${name} is empty`);
    return text;
  };

  const id = header(OUTBOX_HEADERS.id, true) ?? '';
  if (!isUuid(id)) fail(`header id is not a UUID: ${JSON.stringify(id.slice(0, 64))}`);
  if (message.key === null || message.key.length === 0) fail('the key is missing');
  if (message.value === null) fail('the value is missing (a tombstone?)');

  let payload: unknown;
  try {
    payload = JSON.parse((message.value ?? Buffer.alloc(0)).toString('utf8'));
  } catch (error) {
    fail(`the value is not JSON (${(error as Error).message})`, error);
  }

  let extra: Record<string, string> = {};
  const extraText = header(OUTBOX_HEADERS.extra, false);
  if (extraText !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(extraText);
    } catch (error) {
      fail(`header ${OUTBOX_HEADERS.extra} is not JSON`, error);
    }
    if (
      typeof parsed !== 'object' ||
      parsed === null ||
      Array.isArray(parsed) ||
      !Object.values(parsed).every((v) => typeof v === 'string')
    ) {
      fail(`header ${OUTBOX_HEADERS.extra} must be a JSON object of strings`);
    }
    extra = parsed as Record<string, string>;
  }

  return {
    id,
    topic,
    partition,
    offset: message.offset,
    key: (message.key ?? Buffer.alloc(0)).toString('utf8'),
    eventType: header(OUTBOX_HEADERS.eventType, true) ?? '',
    aggregateType: header(OUTBOX_HEADERS.aggregateType, true) ?? '',
    traceparent: header(OUTBOX_HEADERS.traceparent, false),
    correlationId: header(OUTBOX_HEADERS.correlationId, false),
    idempotencyKey: header(OUTBOX_HEADERS.idempotencyKey, false),
    headers: extra,
    payload,
    timestamp: Number(message.timestamp),
  };
}
