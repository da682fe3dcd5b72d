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
  /** A cross-region step: the reply goes to the home region's relay topic, addressed to replyTopic. */
  readonly replyVia?: { readonly region: string; readonly topic: string };
}

/**
 * The Kafka record of a reply: keyed by execution, so one execution's replies stay in
 * order. `traceHeaders` (`traceparent`, `tracestate`: the reply's PRODUCER span) make the
 * control plane's decision a child of it.
 */
export function replyRecord(
  to: Addressed,
  body: ReplyBody,
  workerId: string,
  {
    messageId = newId(),
    traceHeaders = {},
  }: { messageId?: string; traceHeaders?: Readonly<Record<string, string>> } = {},
): RecordToSend {
  const reply = {
    ...body,
    messageId,
    executionId: to.executionId,
    stepExecutionId: to.stepExecutionId,
    workerId,
    at: new Date().toISOString(),
  };
  return {
    topic: to.replyVia?.topic ?? to.replyTopic,
    key: to.executionId,
    value: JSON.stringify(reply),
    headers: {
      ...(to.idempotencyKey === undefined ? {} : { [OUTBOX_HEADERS.idempotencyKey]: to.idempotencyKey }),
      // The relay's envelope (src/relay/routing.ts): target region and topic.
      ...(to.replyVia === undefined
        ? {}
        : { 'sous-target-region': to.replyVia.region, 'sous-target-topic': to.replyTopic }),
      ...traceHeaders,
    },
  };
}
