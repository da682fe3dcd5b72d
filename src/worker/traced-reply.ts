import { trace, type Context } from '@opentelemetry/api';
import type { RecordProducer } from '../kafka/producer.js';
import { ATTR } from '../observability/span-attributes.js';
import { traceHeaders } from '../observability/trace-context.js';
import { endSpan, producerSpan } from '../observability/tracing.js';
import { newId } from '../uuid.js';
import { replyRecord, type ReplyBody } from './reply.js';

/** Where a reply goes: the command's (or completion token's) addressing. */
interface Addressed {
  readonly executionId: string;
  readonly stepExecutionId: string;
  readonly replyTopic: string;
  readonly idempotencyKey?: string;
  readonly replyVia?: { readonly region: string; readonly topic: string };
}

/**
 * Sends one reply under its PRODUCER span (`send <reply topic>`), child of `parent` (the
 * handler's span, or a completion token's context): the span's context travels in the
 * record's `traceparent` header, so the decision the reply triggers joins the trace.
 * Resolves once the record is in Kafka; the span ends then, failed if the send failed.
 */
export async function sendReply(
  producer: RecordProducer,
  parent: Context,
  to: Addressed,
  body: ReplyBody,
  workerId: string,
): Promise<void> {
  const messageId = newId();
  const span = producerSpan(parent, {
    topic: to.replyVia?.topic ?? to.replyTopic,
    key: to.executionId,
    messageId,
    attributes: {
      [ATTR.executionId]: to.executionId,
      [ATTR.stepExecutionId]: to.stepExecutionId,
      [ATTR.replyKind]: body.kind,
      [ATTR.workerId]: workerId,
    },
  });
  const record = replyRecord(to, body, workerId, {
    messageId,
    traceHeaders: traceHeaders(trace.setSpan(parent, span)),
  });
  try {
    await producer.send([record]);
  } catch (error) {
    endSpan(span, error);
    throw error;
  }
  endSpan(span);
}
