// startTracing: the SDK the shipped processes start from the OTEL_* variables exports
// over OTLP/HTTP (to a receiver in this process), with the service name the variables
// give over the process's own, and flushes what is buffered on shutdown.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import { startTracing } from '../../src/observability/tracing-sdk.js';
import { inSpan } from '../../src/observability/tracing.js';
import { startCollector } from '../helpers/otlp-collector.js';

// Whatever the shell exported, the first case runs without OTEL_* variables.
process.env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('OTEL_')));

describe('startTracing', () => {
  it('stays off without OTEL_* variables', async () => {
    const tracing = startTracing({ serviceName: 'off' });
    assert.equal(tracing.enabled, false);
    assert.match(tracing.description, /tracing off/);
    await tracing.shutdown();
  });

  it('exports spans over OTLP/HTTP with the service name of OTEL_SERVICE_NAME, and flushes on shutdown', async () => {
    const collector = await startCollector();
    after(() => collector.close());
    // The SDK's parts read process.env themselves (this file runs in a process of its own).
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = collector.endpoint;
    process.env.OTEL_SERVICE_NAME = 'sous-test';
    const tracing = startTracing({ serviceName: 'sous-default' });
    assert.equal(tracing.enabled, true);
    assert.ok(tracing.description.includes(`OTLP ${collector.endpoint}/v1/traces`), tracing.description);
    // Nesting needs the context manager startTracing registers.
    await inSpan('outer', {}, ROOT_CONTEXT, async () => {
      await inSpan('inner', {}, context.active(), async () => undefined);
    });
    await tracing.shutdown();
    assert.deepEqual(collector.spans.map((s) => `${s.name}@${s.service}`).sort(), [
      'inner@sous-test',
      'outer@sous-test',
    ]);
    const outer = collector.spans.find((s) => s.name === 'outer');
    const inner = collector.spans.find((s) => s.name === 'inner');
    assert.equal(inner?.parentSpanId, outer?.spanId);
    assert.equal(outer?.parentSpanId, undefined);
  });
});
