import {
  createTraceState,
  isSpanContextValid,
  ROOT_CONTEXT,
  trace,
  TraceFlags,
  type Context,
  type SpanContext,
} from '@opentelemetry/api';

/*
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) as sous carries it: the
 * `traceparent` column of an outbox row (which Debezium copies to the Kafka header
 * `traceparent`), the `traceparent` header of a worker's reply, and an HTTP caller's
 * `traceparent` header. sous reads and writes it itself rather than through the global
 * propagator: without an OpenTelemetry SDK the global propagator is a no-op, and a
 * caller's context must still pass through sous unchanged; with one, the column and
 * headers are W3C whatever propagators the process configured.
 */

/** The header (and outbox column) names. */
export const TRACEPARENT_HEADER = 'traceparent';
export const TRACESTATE_HEADER = 'tracestate';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const INVALID_TRACE_ID = '0'.repeat(32);
const INVALID_SPAN_ID = '0'.repeat(16);

/**
 * The span context a `traceparent` names (remote), or undefined when it is not a valid
 * one: version ff, an all-zero id, or (version 00) anything after the flags. A later
 * version is read by its first four fields, as the specification asks.
 */
export function parseTraceparent(text: string | undefined, tracestate?: string): SpanContext | undefined {
  if (text === undefined) return undefined;
  const match = TRACEPARENT.exec(text.trim());
  if (match === null) return undefined;
  const [, version, traceId, spanId, flags, rest] = match;
  if (version === undefined || traceId === undefined || spanId === undefined || flags === undefined) return undefined;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === INVALID_TRACE_ID || spanId === INVALID_SPAN_ID) return undefined;
  return {
    traceId,
    spanId,
    // Only the sampled bit is defined; others are ignored on read, as the specification asks.
    traceFlags: Number.parseInt(flags, 16) & TraceFlags.SAMPLED,
    isRemote: true,
    ...(tracestate === undefined || tracestate.trim() === ''
      ? {}
      : // The API's own parser: the worker SDK depends on @opentelemetry/api alone, not on core's TraceState.
        // eslint-disable-next-line @typescript-eslint/no-deprecated
        { traceState: createTraceState(tracestate) }),
  };
}

/** The `traceparent` of a span context (version 00), or undefined when it is not valid. */
export function formatTraceparent(spanContext: SpanContext | undefined): string | undefined {
  if (spanContext === undefined || !isSpanContextValid(spanContext)) return undefined;
  const flags = (spanContext.traceFlags & TraceFlags.SAMPLED).toString(16).padStart(2, '0');
  return `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
}

/** The `traceparent` of the span active in `context`, or undefined when there is none. */
export function traceparentOf(context: Context): string | undefined {
  return formatTraceparent(trace.getSpanContext(context));
}

/** A context whose (remote) parent span is the one `traceparent` names; undefined when it names none. */
export function contextFromTraceparent(
  traceparent: string | null | undefined,
  tracestate?: string,
  base: Context = ROOT_CONTEXT,
): Context | undefined {
  const spanContext = parseTraceparent(traceparent ?? undefined, tracestate);
  return spanContext === undefined ? undefined : trace.setSpanContext(base, spanContext);
}

/** The trace headers of the span active in `context`: `traceparent`, and `tracestate` when it has one. */
export function traceHeaders(context: Context): Record<string, string> {
  const spanContext = trace.getSpanContext(context);
  const traceparent = formatTraceparent(spanContext);
  if (traceparent === undefined) return {};
  const tracestate = spanContext?.traceState?.serialize();
  return {
    [TRACEPARENT_HEADER]: traceparent,
    ...(tracestate === undefined || tracestate === '' ? {} : { [TRACESTATE_HEADER]: tracestate }),
  };
}

/** A Kafka or HTTP header value as text: the first of several, a Buffer decoded as UTF-8. */
export function headerText(value: unknown): string | undefined {
  const first: unknown = Array.isArray(value) ? value[0] : value;
  if (typeof first === 'string') return first;
  if (Buffer.isBuffer(first)) return first.toString('utf8');
  return undefined;
}

/**
 * The remote parent carried by a record's or request's headers (`traceparent`,
 * `tracestate`), or undefined when they carry none (or an invalid one).
 */
export function contextFromHeaders(
  headers: Readonly<Record<string, unknown>> | undefined,
  base: Context = ROOT_CONTEXT,
): Context | undefined {
  if (headers === undefined) return undefined;
  return contextFromTraceparent(headerText(headers[TRACEPARENT_HEADER]), headerText(headers[TRACESTATE_HEADER]), base);
}
