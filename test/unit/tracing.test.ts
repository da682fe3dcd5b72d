// The pure parts of tracing: the W3C traceparent codec and header carriers, the settings
// read from the OTEL_* variables, and the span helpers, with and without an SDK.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { ConfigInvalidError } from '../../src/errors.js';
import {
  contextFromHeaders,
  contextFromTraceparent,
  formatTraceparent,
  headerText,
  parseTraceparent,
  traceHeaders,
  traceparentOf,
} from '../../src/observability/trace-context.js';
import { tracingSettings } from '../../src/observability/tracing-sdk.js';
import { consumerSpan, endSpan, inSpan, linkIfOtherTrace, producerSpan } from '../../src/observability/tracing.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${SPAN_ID}-01`;

describe('traceparent codec', () => {
  it('reads a version 00 traceparent as a remote, sampled span context and writes it back', () => {
    const spanContext = parseTraceparent(TRACEPARENT);
    assert.deepEqual(spanContext, { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1, isRemote: true });
    assert.equal(formatTraceparent(spanContext), TRACEPARENT);
  });

  it('keeps only the sampled flag, and an unsampled context stays unsampled', () => {
    assert.equal(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-03`)?.traceFlags, 1);
    assert.equal(formatTraceparent(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-00`)), `00-${TRACE_ID}-${SPAN_ID}-00`);
  });

  it('refuses what the specification calls invalid', () => {
    for (const bad of [
      'abc',
      `ff-${TRACE_ID}-${SPAN_ID}-01`,
      `00-${'0'.repeat(32)}-${SPAN_ID}-01`,
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
      `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`,
      `00-${TRACE_ID}-${SPAN_ID}-01-extra`,
      `00-${TRACE_ID}-${SPAN_ID}`,
    ]) {
      assert.equal(parseTraceparent(bad), undefined, bad);
    }
    assert.equal(parseTraceparent(undefined), undefined);
  });

  it('reads a later version by its first four fields', () => {
    assert.equal(parseTraceparent(`01-${TRACE_ID}-${SPAN_ID}-01-whatever`)?.spanId, SPAN_ID);
  });

  it('carries tracestate along', () => {
    const spanContext = parseTraceparent(TRACEPARENT, 'vendor=a,other=b') ?? assert.fail();
    assert.equal(spanContext.traceState?.get('vendor'), 'a');
    const headers = traceHeaders(trace.setSpanContext(ROOT_CONTEXT, spanContext));
    assert.deepEqual(headers, { traceparent: TRACEPARENT, tracestate: 'vendor=a,other=b' });
  });

  it('has no headers and no traceparent for a context without a span', () => {
    assert.deepEqual(traceHeaders(ROOT_CONTEXT), {});
    assert.equal(traceparentOf(ROOT_CONTEXT), undefined);
    assert.equal(contextFromTraceparent(null), undefined);
  });
});

describe('header carriers', () => {
  it('reads Kafka (Buffer) and HTTP (string, repeated) header values', () => {
    assert.equal(headerText(Buffer.from('x')), 'x');
    assert.equal(headerText(['first', 'second']), 'first');
    assert.equal(headerText([Buffer.from('b')]), 'b');
    assert.equal(headerText(undefined), undefined);
    assert.equal(headerText(42), undefined);
  });

  it('finds the remote parent in a record\u2019s headers, and none in headers without one', () => {
    const fromKafka = contextFromHeaders({ traceparent: Buffer.from(TRACEPARENT), other: Buffer.from('y') });
    assert.equal(traceparentOf(fromKafka ?? assert.fail()), TRACEPARENT);
    assert.equal(trace.getSpanContext(fromKafka ?? ROOT_CONTEXT)?.isRemote, true);
    assert.equal(contextFromHeaders({ traceparent: 'garbage' }), undefined);
    assert.equal(contextFromHeaders({}), undefined);
    assert.equal(contextFromHeaders(undefined), undefined);
  });
});

describe('tracing settings (OTEL_* variables)', () => {
  it('is off when no variable asks for it: nothing is exported or sent anywhere', () => {
    assert.deepEqual(tracingSettings({}).exporters, []);
  });

  it('is on with an OTLP endpoint, or when OTEL_TRACES_EXPORTER names an exporter', () => {
    assert.deepEqual(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).exporters, ['otlp']);
    assert.deepEqual(
      tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }).exporters,
      ['otlp'],
    );
    assert.deepEqual(tracingSettings({ OTEL_TRACES_EXPORTER: 'console, otlp' }).exporters, ['console', 'otlp']);
    assert.deepEqual(
      tracingSettings({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).exporters,
      [],
    );
    assert.deepEqual(
      tracingSettings({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }).exporters,
      [],
    );
  });

  it('reads the sampler and the batch settings, with the specification\u2019s defaults', () => {
    const defaults = tracingSettings({});
    assert.equal(defaults.sampler, 'parentbased_always_on');
    assert.equal(defaults.samplerRatio, 1);
    const given = tracingSettings({
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '64',
    });
    assert.equal(given.sampler, 'parentbased_traceidratio');
    assert.equal(given.samplerRatio, 0.25);
    assert.deepEqual(given.batch, { scheduledDelayMillis: 100, maxExportBatchSize: 64 });
  });

  it('names every bad variable at once', () => {
    assert.throws(
      () =>
        tracingSettings({
          OTEL_TRACES_EXPORTER: 'zipkin',
          OTEL_TRACES_SAMPLER: 'sometimes',
          OTEL_TRACES_SAMPLER_ARG: '2',
          OTEL_BSP_SCHEDULE_DELAY: '-1',
        }),
      (error: unknown) =>
        error instanceof ConfigInvalidError &&
        ['OTEL_TRACES_EXPORTER', 'OTEL_TRACES_SAMPLER', 'OTEL_TRACES_SAMPLER_ARG', 'OTEL_BSP_SCHEDULE_DELAY'].every(
          (name) => error.message.includes(name),
        ),
    );
  });
});

// One file, one process: the no-SDK cases run before the SDK is registered below.
describe('span helpers', () => {
  it('without an SDK: no span is recorded and the parent\u2019s context passes through unchanged', () => {
    const parent = contextFromTraceparent(TRACEPARENT) ?? assert.fail();
    const span = producerSpan(parent, { topic: 'sous.cmd.x' });
    assert.equal(span.isRecording(), false);
    assert.equal(traceparentOf(trace.setSpan(parent, span)), TRACEPARENT);
    endSpan(span);
    assert.equal(traceparentOf(trace.setSpan(ROOT_CONTEXT, consumerSpan(undefined, { topic: 't' }))), undefined);
  });

  it('with an SDK: messaging spans follow the semantic conventions and nest', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    context.setGlobalContextManager(new AsyncLocalStorageContextManager());
    trace.setGlobalTracerProvider(provider);

    const parent = contextFromTraceparent(TRACEPARENT) ?? assert.fail();
    const send = producerSpan(parent, { topic: 'sous.cmd.pay', key: 'e/s', messageId: 'm1' });
    const sent = trace.setSpan(parent, send);
    endSpan(send);
    const processed = consumerSpan(contextFromTraceparent(traceparentOf(sent)), {
      topic: 'sous.cmd.pay',
      partition: 3,
      offset: '42',
      consumerGroup: 'g',
    });
    await assert.rejects(
      inSpan('handler work', {}, trace.setSpan(ROOT_CONTEXT, processed), async () => {
        await inSpan('nested', {}, context.active(), async () => undefined);
        throw Object.assign(new Error('boom'), { code: 'card_declined' });
      }),
    );
    endSpan(processed);
    await provider.forceFlush();

    const spans = new Map(exporter.getFinishedSpans().map((s) => [s.name, s]));
    const producer = spans.get('send sous.cmd.pay') ?? assert.fail('no producer span');
    const consumer = spans.get('process sous.cmd.pay') ?? assert.fail('no consumer span');
    const work = spans.get('handler work') ?? assert.fail('no handler span');
    const nested = spans.get('nested') ?? assert.fail('no nested span');
    assert.equal(producer.kind, SpanKind.PRODUCER);
    assert.equal(producer.spanContext().traceId, TRACE_ID);
    assert.equal(producer.parentSpanContext?.spanId, SPAN_ID);
    assert.deepEqual(producer.attributes, {
      'messaging.system': 'kafka',
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'send',
      'messaging.destination.name': 'sous.cmd.pay',
      'messaging.kafka.message.key': 'e/s',
      'messaging.message.id': 'm1',
    });
    assert.equal(consumer.kind, SpanKind.CONSUMER);
    assert.equal(consumer.parentSpanContext?.spanId, producer.spanContext().spanId);
    assert.equal(consumer.attributes['messaging.operation.type'], 'process');
    assert.equal(consumer.attributes['messaging.destination.partition.id'], '3');
    assert.equal(consumer.attributes['messaging.kafka.offset'], 42);
    assert.equal(consumer.attributes['messaging.consumer.group.name'], 'g');
    assert.equal(work.parentSpanContext?.spanId, consumer.spanContext().spanId);
    assert.equal(nested.parentSpanContext?.spanId, work.spanContext().spanId);
    assert.equal(work.status.code, SpanStatusCode.ERROR);
    assert.equal(work.attributes['error.type'], 'card_declined');
    assert.equal(work.events[0]?.name, 'exception');
    await provider.shutdown();
  });

  it('links another trace only', () => {
    const parent = contextFromTraceparent(TRACEPARENT) ?? assert.fail();
    const sameTrace = contextFromTraceparent(`00-${TRACE_ID}-${'1'.repeat(16)}-01`);
    const other = contextFromTraceparent(`00-${'a'.repeat(32)}-${'1'.repeat(16)}-01`);
    assert.deepEqual(linkIfOtherTrace(sameTrace, parent), []);
    assert.deepEqual(linkIfOtherTrace(ROOT_CONTEXT, parent), []);
    assert.equal(linkIfOtherTrace(other, parent)[0]?.context.traceId, 'a'.repeat(32));
  });
});
