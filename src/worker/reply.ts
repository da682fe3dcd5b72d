import { randomUUID } from 'node:crypto';
import { OUTBOX_HEADERS } from '../kafka/outbox-record.js';
import type { RecordToSend } from '../kafka/producer.js';
import type { StepReply } from '../protocol/messages.js';

/** A reply before it is stamped with its message id, addressee, worker and time. */
export type ReplyBody = StepReply extends infer R
  ? R extends StepReply
    ? Omit<R, 'messageId' | 'executionId' | 'stepExecutionId' | 'workerId' | 'at'>
    : never
  : never;

/** The step attempt a reply is about, and where it goes. */
export interface ReplyAddress {
  readonly executionId: string;
  readonly stepExecutionId: string;
  readonly replyTopic: string;
}

/** Headers copied from the command onto each of its replies. */
export interface ReplyHeaders {
  readonly traceparent?: string | undefined;
  readonly correlationId?: string | undefined;
  readonly idempotencyKey?: string | undefined;
}

/**
 * The Kafka record of a reply: keyed by execution id, so the replies of one execution
 * stay in order on one partition of the reply topic, with the command's trace context,
 * correlation id and idempotency key in its headers.
 */
export function replyRecord(
  to: ReplyAddress,
  body: ReplyBody,
  workerId: string,
  headers: ReplyHeaders = {},
): RecordToSend {
  const reply = {
    ...body,
    messageId: randomUUID(),
    executionId: to.executionId,
    stepExecutionId: to.stepExecutionId,
    workerId,
    at: new Date().toISOString(),
  };
  const copied: Record<string, string> = {};
  if (headers.traceparent !== undefined) copied[OUTBOX_HEADERS.traceparent] = headers.traceparent;
  if (headers.correlationId !== undefined) copied[OUTBOX_HEADERS.correlationId] = headers.correlationId;
  if (headers.idempotencyKey !== undefined) copied[OUTBOX_HEADERS.idempotencyKey] = headers.idempotencyKey;
  return { topic: to.replyTopic, key: to.executionId, value: JSON.stringify(reply), headers: copied };
}
