import { z } from 'zod';

/** Kafka's rule for topic names (and what the outbox table's CHECK enforces). */
export const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

/** W3C trace context `traceparent` (version 00). */
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** PostgreSQL text and jsonb cannot hold NUL. */
const noNul = (what: string) =>
  [(s: string) => !s.includes('\u0000'), `${what} must not hold a NUL character`] as const;

const nonEmpty = (what: string) =>
  z
    .string(`${what} must be a string`)
    .min(1, `${what} must not be empty`)
    .refine(...noNul(what));

export const outboxMessageSchema = z.strictObject({
  id: z.uuid('id must be a UUID').optional(),
  topic: nonEmpty('topic')
    .regex(TOPIC_NAME, 'topic may hold only letters, digits, ".", "_" and "-" (at most 249)')
    .refine((t) => t !== '.' && t !== '..', 'topic must not be "." or ".."'),
  key: nonEmpty('key'),
  aggregateType: nonEmpty('aggregateType'),
  eventType: nonEmpty('eventType'),
  payload: z.json('payload must be JSON-serialisable'),
  traceparent: z
    .string()
    .regex(TRACEPARENT, 'traceparent must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)')
    .optional(),
  correlationId: nonEmpty('correlationId').optional(),
  idempotencyKey: nonEmpty('idempotencyKey').optional(),
  headers: z
    .record(
      z.string().refine(...noNul('header names')),
      z.string('header values must be strings').refine(...noNul('header values')),
    )
    .optional(),
});

/**
 * One message for Kafka, written to the outbox inside the caller's transaction.
 * Debezium delivers it to `topic` with `key` as the Kafka key.
 */
export type OutboxMessage = Omit<z.input<typeof outboxMessageSchema>, 'payload'> & {
  /** Any JSON-serialisable value; checked when written. */
  readonly payload: unknown;
};
