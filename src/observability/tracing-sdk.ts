import { context, diag, DiagLogLevel, propagation, trace, type DiagLogger } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import {
  defaultResource,
  detectResources,
  resourceAttributesEnvDetector,
  resourceFromAttributes,
  serviceNameEnvDetector,
} from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type Sampler,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { z } from 'zod';
import { parseEnvironment } from '../env.js';
import { ConfigInvalidError } from '../errors.js';
import { logger as rootLogger, type Logger } from '../logger.js';

/*
 * The OpenTelemetry SDK for the processes sous ships (control plane, API, npm start), and
 * for a service's worker process that wants it: switched on by the standard OTEL_*
 * variables, off (the API's no-op) otherwise. Library code never imports this file; it
 * uses @opentelemetry/api alone and works whichever SDK, if any, the process registered.
 */

const EXPORTERS = ['otlp', 'console', 'none'] as const;
const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

const positiveInteger = (name: string) =>
  z.coerce
    .number({ error: `${name} must be a number` })
    .int(`${name} must be a whole number`)
    .positive(`${name} must be positive`)
    .optional();

const environmentSchema = z.object({
  OTEL_SDK_DISABLED: z.enum(['true', 'false', ''], 'OTEL_SDK_DISABLED must be true or false').optional(),
  OTEL_TRACES_EXPORTER: z
    .string()
    .transform((value) =>
      value
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e !== ''),
    )
    .pipe(z.array(z.enum(EXPORTERS, `OTEL_TRACES_EXPORTER lists ${EXPORTERS.join(', ')} (comma-separated)`)))
    .optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url('OTEL_EXPORTER_OTLP_ENDPOINT must be a URL').optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be a URL').optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: z.string().optional(),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: z.string().optional(),
  OTEL_TRACES_SAMPLER: z.enum(SAMPLERS, `OTEL_TRACES_SAMPLER must be one of ${SAMPLERS.join(', ')}`).optional(),
  OTEL_TRACES_SAMPLER_ARG: z.coerce
    .number({ error: 'OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1' })
    .min(0, 'OTEL_TRACES_SAMPLER_ARG must be from 0 to 1')
    .max(1, 'OTEL_TRACES_SAMPLER_ARG must be from 0 to 1')
    .optional(),
  OTEL_BSP_SCHEDULE_DELAY: positiveInteger('OTEL_BSP_SCHEDULE_DELAY'),
  OTEL_BSP_EXPORT_TIMEOUT: positiveInteger('OTEL_BSP_EXPORT_TIMEOUT'),
  OTEL_BSP_MAX_QUEUE_SIZE: positiveInteger('OTEL_BSP_MAX_QUEUE_SIZE'),
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: positiveInteger('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
});

export type TracingEnvironment = z.output<typeof environmentSchema>;

/** What the environment asks for: the exporters (none: tracing stays off), the sampler, the batching. */
export interface TracingSettings {
  readonly exporters: readonly ('otlp' | 'console')[];
  readonly sampler: (typeof SAMPLERS)[number];
  readonly samplerRatio: number;
  readonly batch: {
    readonly scheduledDelayMillis?: number;
    readonly exportTimeoutMillis?: number;
    readonly maxQueueSize?: number;
    readonly maxExportBatchSize?: number;
  };
}

/**
 * Reads the tracing settings from the standard variables. Tracing is on when
 * OTEL_TRACES_EXPORTER names an exporter, or, when it is unset, when an OTLP endpoint is
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): a process given no
 * OTEL_* variable exports nothing and sends nothing anywhere. OTEL_SDK_DISABLED=true wins.
 * A bad value throws ConfigInvalidError naming every bad variable.
 */
export function tracingSettings(env: NodeJS.ProcessEnv = process.env): TracingSettings {
  const parsed = parseEnvironment(
    environmentSchema,
    env,
    'invalid tracing settings',
    (message, options) => new ConfigInvalidError(message, options),
  );
  const endpoint = parsed.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? parsed.OTEL_EXPORTER_OTLP_ENDPOINT;
  const named = parsed.OTEL_TRACES_EXPORTER ?? (endpoint === undefined ? [] : ['otlp']);
  const exporters =
    parsed.OTEL_SDK_DISABLED === 'true' ? [] : [...new Set(named.filter((e): e is 'otlp' | 'console' => e !== 'none'))];
  return {
    exporters,
    sampler: parsed.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on',
    samplerRatio: parsed.OTEL_TRACES_SAMPLER_ARG ?? 1,
    batch: {
      ...(parsed.OTEL_BSP_SCHEDULE_DELAY === undefined ? {} : { scheduledDelayMillis: parsed.OTEL_BSP_SCHEDULE_DELAY }),
      ...(parsed.OTEL_BSP_EXPORT_TIMEOUT === undefined ? {} : { exportTimeoutMillis: parsed.OTEL_BSP_EXPORT_TIMEOUT }),
      ...(parsed.OTEL_BSP_MAX_QUEUE_SIZE === undefined ? {} : { maxQueueSize: parsed.OTEL_BSP_MAX_QUEUE_SIZE }),
      ...(parsed.OTEL_BSP_MAX_EXPORT_BATCH_SIZE === undefined
        ? {}
        : { maxExportBatchSize: parsed.OTEL_BSP_MAX_EXPORT_BATCH_SIZE }),
    },
  };
}

/** The sampler OTEL_TRACES_SAMPLER names (the specification's default: parent-based, always on). */
export function samplerOf(settings: Pick<TracingSettings, 'sampler' | 'samplerRatio'>): Sampler {
  const ratio = new TraceIdRatioBasedSampler(settings.samplerRatio);
  switch (settings.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio;
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio });
  }
}

export interface TracingOptions {
  /** service.name when OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) does not give one. */
  readonly serviceName: string;
  readonly logger?: Logger;
}

/** The SDK a process started, or the no-op it kept. */
export interface Tracing {
  /** Spans are recorded and exported. */
  readonly enabled: boolean;
  /** One line for the process's start-up output. */
  readonly description: string;
  /** Exports what is buffered, then stops the SDK (call once the process's work has stopped). */
  shutdown(): Promise<void>;
}

/** OpenTelemetry's own diagnostics (a failed export, say) as sous log entries. */
function diagLogger(log: Logger): DiagLogger {
  const text = (message: string, args: unknown[]) =>
    [message, ...args.map((a) => (a instanceof Error ? a.message : String(a)))].join(' ');
  return {
    error: (message, ...args) => log.error(text(message, args)),
    warn: (message, ...args) => log.warn(text(message, args)),
    info: (message, ...args) => log.info(text(message, args)),
    debug: (message, ...args) => log.debug(text(message, args)),
    verbose: (message, ...args) => log.trace(text(message, args)),
  };
}

/**
 * Starts the OpenTelemetry tracing SDK when the OTEL_* variables ask for it (see
 * `tracingSettings`), registering it globally: a tracer provider with a batch span
 * processor per exporter (OTLP over HTTP, JSON; or the console), the W3C trace-context
 * and baggage propagators, and an AsyncLocalStorage context manager. When the process
 * already registered a tracer provider of its own, that one stays and this does nothing.
 */
export function startTracing(options: TracingOptions): Tracing {
  // process.env, not a given object: the exporter and the resource detectors read it too.
  const env = process.env;
  const settings = tracingSettings(env);
  const log = (options.logger ?? rootLogger).child({ component: 'tracing' });
  if (settings.exporters.length === 0) {
    return {
      enabled: false,
      description: 'tracing off (set OTEL_EXPORTER_OTLP_ENDPOINT to export spans)',
      shutdown: async () => undefined,
    };
  }
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL;
  if (protocol !== undefined && protocol !== 'http/json') {
    log.warn({ protocol }, 'sous exports OTLP over HTTP as JSON (http/json); the protocol asked for is ignored');
  }
  const exporters: SpanExporter[] = settings.exporters.map((name) =>
    name === 'otlp' ? new OTLPTraceExporter() : new ConsoleSpanExporter(),
  );
  const spanProcessors: SpanProcessor[] = exporters.map(
    (exporter) => new BatchSpanProcessor({ exporter, ...settings.batch }),
  );
  // Later ones win: the SDK's own attributes, the process's service name, then OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': options.serviceName }))
    .merge(detectResources({ detectors: [resourceAttributesEnvDetector, serviceNameEnvDetector] }));
  const provider = new TracerProvider({ resource, sampler: samplerOf(settings), spanProcessors });
  if (!trace.setGlobalTracerProvider(provider)) {
    void provider.shutdown();
    return {
      enabled: true,
      description: 'tracing by the tracer provider the process registered',
      shutdown: async () => undefined,
    };
  }
  diag.setLogger(diagLogger(log), DiagLogLevel.WARN);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager());
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
  const endpoint =
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    (env.OTEL_EXPORTER_OTLP_ENDPOINT === undefined
      ? undefined
      : `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/$/, '')}/v1/traces`) ??
    'http://localhost:4318/v1/traces';
  const targets = settings.exporters.map((e) => (e === 'otlp' ? `OTLP ${endpoint}` : 'console'));
  let stopping: Promise<void> | undefined;
  return {
    enabled: true,
    description: `tracing to ${targets.join(' and ')} (sampler ${settings.sampler})`,
    shutdown() {
      stopping ??= provider.shutdown().catch((error: unknown) => {
        log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'spans not all exported');
      });
      return stopping;
    },
  };
}
