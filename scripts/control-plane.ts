// A control-plane process: consumes replies, runs timers, until SIGTERM/SIGINT.
// Configured by SOUS_DATABASE_URL, SOUS_KAFKA_BROKERS (and SOUS_REPLY_TOPIC, SOUS_CONTROL_PLANE_GROUP,
// SOUS_REPLY_BATCH_SIZE, SOUS_REPLY_CONCURRENCY, SOUS_REPLY_TRANSACTIONS, SOUS_STATE_CACHE_SIZE,
// SOUS_STATE_SNAPSHOT_EVERY, SOUS_PG_POOL_SIZE, SOUS_CONNECT_URL,
// SOUS_OUTBOX_CONNECTOR, SOUS_REGION, SOUS_REMOTE_REGIONS (regions), SOUS_METRICS_PORT, SOUS_METRICS_HOST, SOUS_METRICS_SAMPLE_MS for /metrics, /healthz and
// /readyz, and SOUS_RETENTION, SOUS_RETENTION_BATCH_SIZE for the purge of finished executions).
// Secure connections: SOUS_KAFKA_SSL*, SOUS_KAFKA_SASL_*, SOUS_PG_SSL_*, SOUS_DATABASE_PASSWORD_FILE.
// Tracing: the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER, ...).
import { loadEnvironmentConfig } from '../src/config.js';
import { controlPlaneInternals, createControlPlane } from '../src/control-plane/control-plane.js';
import { SousError } from '../src/errors.js';
import { logger } from '../src/logger.js';
import { startTracing } from '../src/observability/tracing-sdk.js';

try {
  const tracing = startTracing({ serviceName: 'sous-control-plane' });
  process.stdout.write(`control plane ${tracing.description}\n`);
  const config = loadEnvironmentConfig();
  const controlPlane = createControlPlane({
    databaseUrl: config.databaseUrl,
    brokers: config.brokers,
    kafkaSecurity: config.security.kafka,
    ...(config.security.postgres === undefined ? {} : { databaseTls: config.security.postgres }),
    ...(config.security.postgresPassword === undefined ? {} : { databasePassword: config.security.postgresPassword }),
    replyTopic: config.replyTopic,
    groupId: config.groupId,
    replyBatchSize: config.replyBatchSize,
    partitionsConsumedConcurrently: config.partitionsConsumedConcurrently,
    replyTransactions: config.replyTransactions,
    stateCacheSize: config.stateCacheSize,
    stateSnapshotEvery: config.stateSnapshotEvery,
    shardTimeoutMs: config.shardTimeoutMs,
    routing: config.routing,
    ...(config.region === undefined ? {} : { region: config.region }),
    remoteRegions: config.remoteRegions,
    poolSize: config.poolSize,
    ...(config.connectUrl === undefined ? {} : { connectUrl: config.connectUrl }),
    connectorName: config.connectorName,
    ...(config.metricsPort === undefined ? {} : { metricsPort: config.metricsPort }),
    metricsHost: config.metricsHost,
    sampleIntervalMs: config.sampleIntervalMs,
    retention: config.retention,
    retentionBatchSize: config.retentionBatchSize,
  });
  await controlPlane.start();
  const probes = controlPlaneInternals(controlPlane).observability.probesUrl;
  if (probes !== undefined) {
    process.stdout.write(
      `control plane metrics at ${probes}/metrics, health at ${probes}/healthz and ${probes}/readyz\n`,
    );
  }
  process.stdout.write('control plane ready\n');
  const stop = () => {
    // Spans of the last decisions are exported before the process exits.
    controlPlane
      .stop()
      .then(
        () => tracing.shutdown(),
        async (error: unknown) => {
          await tracing.shutdown();
          throw error;
        },
      )
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, 'control plane did not stop cleanly');
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (error) {
  process.stderr.write(
    `control plane: ${error instanceof SousError ? `${error.code}: ${error.message}` : String(error)}\n`,
  );
  process.exit(1);
}
