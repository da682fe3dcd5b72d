import { z } from 'zod';
import { integerVariable, parseEnvironment } from './env.js';
import { ConfigInvalidError } from './errors.js';

/** Settings of a sous process read from the environment, validated once at start. */
export interface EnvironmentConfig {
  /** SOUS_DATABASE_URL: PostgreSQL of the control plane. */
  readonly databaseUrl: string;
  /** SOUS_KAFKA_BROKERS: comma-separated host:port list. */
  readonly brokers: readonly string[];
  /** SOUS_REPLY_TOPIC. @default 'sous.replies' */
  readonly replyTopic: string;
  /** SOUS_CONTROL_PLANE_GROUP. @default 'sous-control-plane' */
  readonly groupId: string;
  /** SOUS_REPLY_BATCH_SIZE: replies decided in one transaction. @default 50 */
  readonly replyBatchSize: number;
  /** SOUS_REPLY_CONCURRENCY: reply partitions decided at once. @default 4 */
  readonly partitionsConsumedConcurrently: number;
  /** SOUS_REPLY_TRANSACTIONS: reply transactions at once (chunks of several partitions share one). @default 2 */
  readonly replyTransactions: number;
  /** SOUS_PG_POOL_SIZE: PostgreSQL connections of the process. @default 10 */
  readonly poolSize: number;
  /** SOUS_CONNECT_URL: Kafka Connect REST address; set, the outbox connector is watched and restarted when FAILED. */
  readonly connectUrl: string | undefined;
  /** SOUS_OUTBOX_CONNECTOR: name of the outbox connector. @default 'sous-outbox' */
  readonly connectorName: string;
  /**
   * SOUS_METRICS_PORT: where /metrics, /healthz and /readyz are served (0: any free port;
   * `off`: not served). @default 9464 (Prometheus's registered default exporter port)
   */
  readonly metricsPort: number | undefined;
  /** SOUS_METRICS_HOST: interface of the metrics port (0.0.0.0 for a scraper elsewhere). @default '127.0.0.1' */
  readonly metricsHost: string;
  /** SOUS_METRICS_SAMPLE_MS: how often gauges read from PostgreSQL and Kafka are refreshed. @default 10000 */
  readonly sampleIntervalMs: number;
}

const positiveInt = (name: string, fallback: number) =>
  integerVariable(fallback, {
    min: 1,
    notANumber: `${name} must be a whole number`,
    notWhole: `${name} must be a whole number`,
    outOfRange: `${name} must be at least 1`,
  });

const schema = z.object({
  SOUS_DATABASE_URL: z
    .string({ error: 'SOUS_DATABASE_URL is required (postgres://user@host:port/db)' })
    .regex(/^postgres(ql)?:\/\//, 'SOUS_DATABASE_URL must start with postgres://'),
  SOUS_KAFKA_BROKERS: z
    .string({ error: 'SOUS_KAFKA_BROKERS is required (host:port[,host:port])' })
    .transform((s) => s.split(',').map((b) => b.trim()))
    .pipe(z.array(z.string().regex(/^[^:\s]+:\d+$/, 'SOUS_KAFKA_BROKERS entries must be host:port')).min(1)),
  SOUS_REPLY_TOPIC: z.string().min(1).default('sous.replies'),
  SOUS_CONTROL_PLANE_GROUP: z.string().min(1).default('sous-control-plane'),
  SOUS_REPLY_BATCH_SIZE: positiveInt('SOUS_REPLY_BATCH_SIZE', 50),
  SOUS_REPLY_CONCURRENCY: positiveInt('SOUS_REPLY_CONCURRENCY', 4),
  SOUS_REPLY_TRANSACTIONS: positiveInt('SOUS_REPLY_TRANSACTIONS', 2),
  SOUS_PG_POOL_SIZE: positiveInt('SOUS_PG_POOL_SIZE', 10),
  SOUS_CONNECT_URL: z
    .url({ protocol: /^https?$/, error: 'SOUS_CONNECT_URL must be an http(s) URL (http://host:8083)' })
    .optional(),
  SOUS_OUTBOX_CONNECTOR: z.string().min(1).default('sous-outbox'),
  SOUS_METRICS_PORT: z
    .union([
      z.literal('off'),
      z.coerce
        .number({ error: 'SOUS_METRICS_PORT must be a port number or off' })
        .int('SOUS_METRICS_PORT must be a port number or off')
        .min(0, 'SOUS_METRICS_PORT must be 0 to 65535 (0: any free port) or off')
        .max(65535, 'SOUS_METRICS_PORT must be 0 to 65535 (0: any free port) or off'),
    ])
    .default(9464),
  SOUS_METRICS_HOST: z.string().min(1, 'SOUS_METRICS_HOST must name an interface').default('127.0.0.1'),
  SOUS_METRICS_SAMPLE_MS: z.coerce
    .number({ error: 'SOUS_METRICS_SAMPLE_MS must be a whole number of milliseconds' })
    .int('SOUS_METRICS_SAMPLE_MS must be a whole number of milliseconds')
    .min(100, 'SOUS_METRICS_SAMPLE_MS must be at least 100')
    .default(10_000),
});

export function loadEnvironmentConfig(env: NodeJS.ProcessEnv = process.env): EnvironmentConfig {
  const e = parseEnvironment(
    schema,
    env,
    'invalid configuration',
    (message, options) => new ConfigInvalidError(message, options),
  );
  return {
    databaseUrl: e.SOUS_DATABASE_URL,
    brokers: e.SOUS_KAFKA_BROKERS,
    replyTopic: e.SOUS_REPLY_TOPIC,
    groupId: e.SOUS_CONTROL_PLANE_GROUP,
    replyBatchSize: e.SOUS_REPLY_BATCH_SIZE,
    partitionsConsumedConcurrently: e.SOUS_REPLY_CONCURRENCY,
    replyTransactions: e.SOUS_REPLY_TRANSACTIONS,
    poolSize: e.SOUS_PG_POOL_SIZE,
    connectUrl: e.SOUS_CONNECT_URL,
    connectorName: e.SOUS_OUTBOX_CONNECTOR,
    metricsPort: e.SOUS_METRICS_PORT === 'off' ? undefined : e.SOUS_METRICS_PORT,
    metricsHost: e.SOUS_METRICS_HOST,
    sampleIntervalMs: e.SOUS_METRICS_SAMPLE_MS,
  };
}
