import {
  context as otelContext,
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { ATTR, MESSAGING_SYSTEM_KAFKA } from './span-attributes.js';

/*
 * sous's spans, through @opentelemetry/api only: without an SDK registered (a process
 * that did not call startTracing, a service that installed none) every call here is the
 * API's no-op, and a parent's context passes through unchanged (a no-op span carries its
 * parent's span context), so a caller's trace still reaches the commands sous sends.
 */

/** Instrumentation scope of every sous span. */
export const TRACER_NAME = 'sous';

/** The tracer of the globally registered provider, looked up each time (the SDK may be set up after import). */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/** Ends a span: with an error status, the exception and `error.type` (its code, else its name) when given one. */
export function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined) {
    const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
    span.setAttribute(ATTR.errorType, typeof code === 'string' ? code : error instanceof Error ? error.name : '_OTHER');
    if (error instanceof Error) span.recordException(error);
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : JSON.stringify(error),
    });
  }
  span.end();
}

/**
 * Runs `run` inside a new span, child of `parent`, active while it runs (so spans made
 * meanwhile nest in it); ends it once `run` settles, with the error if it threw. `run`
 * gets the span's context too: without an SDK nothing is ever active (the no-op context
 * manager keeps nothing), and a caller's context must still pass through explicitly.
 */
export async function inSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; links?: Link[] },
  parent: Context,
  run: (span: Span, context: Context) => Promise<T>,
): Promise<T> {
  const span = tracer().startSpan(name, options, parent);
  const context = trace.setSpan(parent, span);
  try {
    const result = await otelContext.with(context, () => run(span, context));
    endSpan(span);
    return result;
  } catch (error) {
    endSpan(span, error);
    throw error;
  }
}

/** A link to the span active in `other` when it belongs to another trace than `parent`'s; else none. */
export function linkIfOtherTrace(other: Context | undefined, parent: Context): Link[] {
  const linked = other === undefined ? undefined : trace.getSpanContext(other);
  if (linked === undefined || !isSpanContextValid(linked)) return [];
  if (trace.getSpanContext(parent)?.traceId === linked.traceId) return [];
  return [{ context: linked }];
}

/** Whether a span is active in `context` (a valid span context, local or remote). */
export function hasSpan(context: Context): boolean {
  const spanContext = trace.getSpanContext(context);
  return spanContext !== undefined && isSpanContextValid(spanContext);
}

/** What a messaging span says of its message. */
export interface MessageAttributes {
  readonly topic: string;
  readonly key?: string | undefined;
  readonly messageId?: string | undefined;
  readonly partition?: number | undefined;
  readonly offset?: string | undefined;
  readonly consumerGroup?: string | undefined;
  readonly attributes?: Attributes;
}

function messagingAttributes(operation: 'send' | 'process', message: MessageAttributes): Attributes {
  return {
    [ATTR.messagingSystem]: MESSAGING_SYSTEM_KAFKA,
    [ATTR.messagingOperationType]: operation,
    [ATTR.messagingOperationName]: operation,
    [ATTR.messagingDestinationName]: message.topic,
    ...(message.key === undefined ? {} : { [ATTR.messagingKafkaMessageKey]: message.key }),
    ...(message.messageId === undefined ? {} : { [ATTR.messagingMessageId]: message.messageId }),
    ...(message.partition === undefined ? {} : { [ATTR.messagingDestinationPartitionId]: String(message.partition) }),
    ...(message.offset === undefined ? {} : { [ATTR.messagingKafkaOffset]: Number(message.offset) }),
    ...(message.consumerGroup === undefined ? {} : { [ATTR.messagingConsumerGroupName]: message.consumerGroup }),
    ...message.attributes,
  };
}

/**
 * The PRODUCER span of one message (`send <topic>`), child of `parent`: its context is
 * what the message carries (outbox `traceparent` column, Kafka headers), so the consumer's
 * span is its child. The caller ends it once the message is committed or sent.
 */
export function producerSpan(parent: Context, message: MessageAttributes): Span {
  return tracer().startSpan(
    `send ${message.topic}`,
    { kind: SpanKind.PRODUCER, attributes: messagingAttributes('send', message) },
    parent,
  );
}

/**
 * The CONSUMER span processing one message (`process <topic>`), child of the context the
 * message carried (`parent`; a root when it carried none: never whatever happens to be
 * active in the consumer's fetch loop).
 */
export function consumerSpan(parent: Context | undefined, message: MessageAttributes): Span {
  return tracer().startSpan(
    `process ${message.topic}`,
    { kind: SpanKind.CONSUMER, attributes: messagingAttributes('process', message) },
    parent ?? ROOT_CONTEXT,
  );
}
