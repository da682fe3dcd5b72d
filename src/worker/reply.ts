import { newId } from '../uuid.js';
import type { RecordToSend } from '../kafka/producer.js';
import { OUTBOX_HEADERS } from '../kafka/outbox-record.js';
import type { StepReply } from '../protocol/messages.js';

/** A reply before it is stamped with its message id, worker and time. */
export type ReplyBody = StepReply extends infer R
  ? R extends StepReply
    ? Omit<R, 'messageId' | 'executionId' | 'stepExecutionId' | 'workerId' | 'at'>
    : never
  : never;

interface Addressed {
  readonly executionId: string;
  readonly stepExecutionId: string;
  readonly replyTopic: string;
  readonly idempotencyKey?: string;
}

/** The Kafka record of a reply: keyed by execution, so one execution's replies stay in order. */
export function replyRecord(to: Addressed, body: ReplyBody, workerId: string, traceparent?: string): RecordToSend {
  const reply = {
    ...body,
    messageId: newId(),
    executionId: to.executionId,
    stepExecutionId: to.stepExecutionId,
    workerId,
    at: new Date().toISOString(),
  };
  return {
    topic: to.replyTopic,
    key: to.executionId,
    value: JSON.stringify(reply),
    headers: {
      ...(to.idempotencyKey === undefined ? {} : { [OUTBOX_HEADERS.idempotencyKey]: to.idempotencyKey }),
      ...(traceparent === undefined ? {} : { [OUTBOX_HEADERS.traceparent]: traceparent }),
    },
  };
}
