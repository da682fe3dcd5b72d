import { z } from 'zod';
import {
  DEFAULT_RETENTION_MS,
  parseRetentionSetting,
  type RetentionSetting,
} from './control-plane/retention-policy.js';
import { integerVariable, parseEnvironment } from './env.js';
import { ConfigInvalidError } from './errors.js';
import { loadSecurityConfig, type SecurityConfig } from './security/config.js';

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
  /** SOUS_STATE_CACHE_SIZE: running executions whose state is kept between decisions. @default 10000 */
  readonly stateCacheSize: number;
  /** SOUS_STATE_SNAPSHOT_EVERY: events between two stored snapshots of an execution's state. @default 128 */
  readonly stateSnapshotEvery: number;
  /** SOUS_SHARD_TIMEOUT_MS: a shard silent this long leaves the registry view. @default 10000 */
  readonly shardTimeoutMs: number;
  /** SOUS_ROUTING: registry (route by the live shards, hold what none can take) or static. @default registry */
  readonly routing: 'registry' | 'static';
  /** SOUS_REGION: this control plane's region (regions: docs/regions.md). @default none */
  readonly region: string | undefined;
  /** SOUS_REMOTE_REGIONS: regions a relay links to this one, comma-separated; needs SOUS_REGION. @default none */
  readonly remoteRegions: string[];
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
  /**
   * SOUS_RETENTION: how long finished executions are kept before they are purged, a
   * duration (`30d`, `12h`, at least `1m`); `forever`: only recipes declaring their own
   * retention are purged; `off`: nothing is. @default 30d
   */
  readonly retention: RetentionSetting;
  /** SOUS_RETENTION_BATCH_SIZE: root executions purged per transaction. @default 500 */
  readonly retentionBatchSize: number;
  /** Kafka TLS/SASL and PostgreSQL TLS (SOUS_KAFKA_SSL*, SOUS_KAFKA_SASL_*, SOUS_PG_SSL_*): see loadSecurityConfig. */
  readonly security: SecurityConfig;
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
  SOUS_STATE_CACHE_SIZE: integerVariable(10_000, {
    min: 0,
    notANumber: 'SOUS_STATE_CACHE_SIZE must be a whole number',
    notWhole: 'SOUS_STATE_CACHE_SIZE must be a whole number',
    outOfRange: 'SOUS_STATE_CACHE_SIZE must be 0 or more',
  }),
  SOUS_STATE_SNAPSHOT_EVERY: positiveInt('SOUS_STATE_SNAPSHOT_EVERY', 128),
  SOUS_SHARD_TIMEOUT_MS: positiveInt('SOUS_SHARD_TIMEOUT_MS', 10_000),
  SOUS_ROUTING: z
    .enum(['registry', 'static'], { error: 'SOUS_ROUTING must be registry or static' })
    .default('registry'),
  SOUS_PG_POOL_SIZE: positiveInt('SOUS_PG_POOL_SIZE', 10),
  SOUS_REGION: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'SOUS_REGION must be a region name (lower-case letters, digits, dashes)')
    .optional(),
  SOUS_REMOTE_REGIONS: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9-]{0,62}(,[a-z0-9][a-z0-9-]{0,62})*$/,
      'SOUS_REMOTE_REGIONS must be region names separated by commas (e.g. eu-west,ap-south)',
    )
    .optional(),
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
  SOUS_RETENTION: z
    .string()
    .transform((value, ctx) => {
      const setting = parseRetentionSetting(value);
      if (setting === undefined) {
        ctx.addIssue({
          code: 'custom',
          message: 'SOUS_RETENTION must be a duration of at least 1m (e.g. 30d, 12h), forever or off',
        });
        return z.NEVER;
      }
      return setting;
    })
    .optional(),
  SOUS_RETENTION_BATCH_SIZE: integerVariable(500, {
    min: 1,
    max: 10_000,
    notANumber: 'SOUS_RETENTION_BATCH_SIZE must be a whole number',
    notWhole: 'SOUS_RETENTION_BATCH_SIZE must be a whole number',
    outOfRange: 'SOUS_RETENTION_BATCH_SIZE must be 1 to 10000',
  }),
});

export function loadEnvironmentConfig(env: NodeJS.ProcessEnv = process.env): EnvironmentConfig {
  const e = parseEnvironment(
    schema,
    env,
    'invalid configuration',
    (message, options) => new ConfigInvalidError(message, options),
  );
  const security = loadSecurityConfig(env);
  return {
    security,
    databaseUrl: e.SOUS_DATABASE_URL,
    brokers: e.SOUS_KAFKA_BROKERS,
    replyTopic: e.SOUS_REPLY_TOPIC,
    groupId: e.SOUS_CONTROL_PLANE_GROUP,
    replyBatchSize: e.SOUS_REPLY_BATCH_SIZE,
    partitionsConsumedConcurrently: e.SOUS_REPLY_CONCURRENCY,
    replyTransactions: e.SOUS_REPLY_TRANSACTIONS,
    stateCacheSize: e.SOUS_STATE_CACHE_SIZE,
    stateSnapshotEvery: e.SOUS_STATE_SNAPSHOT_EVERY,
    shardTimeoutMs: e.SOUS_SHARD_TIMEOUT_MS,
    routing: e.SOUS_ROUTING,
    region: e.SOUS_REGION,
    remoteRegions: e.SOUS_REMOTE_REGIONS === undefined ? [] : e.SOUS_REMOTE_REGIONS.split(','),
    poolSize: e.SOUS_PG_POOL_SIZE,
    connectUrl: e.SOUS_CONNECT_URL,
    connectorName: e.SOUS_OUTBOX_CONNECTOR,
    metricsPort: e.SOUS_METRICS_PORT === 'off' ? undefined : e.SOUS_METRICS_PORT,
    metricsHost: e.SOUS_METRICS_HOST,
    sampleIntervalMs: e.SOUS_METRICS_SAMPLE_MS,
    retention: e.SOUS_RETENTION ?? DEFAULT_RETENTION_MS,
    retentionBatchSize: e.SOUS_RETENTION_BATCH_SIZE,
  };
}
