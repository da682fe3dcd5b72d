import { z } from 'zod';
import { ConfigInvalidError } from '../errors.js';
import { logger as rootLogger, type Logger } from '../logger.js';
import { REPLY_TOPIC } from '../protocol/messages.js';
import { regionSchema } from '../protocol/shards.js';
import type { KafkaSecurityOptions, PostgresTlsOptions } from '../security/config.js';
import { DEFAULT_RETENTION_MS, MIN_RETENTION_MS } from './retention-policy.js';

const optionsSchema = z.strictObject({
  databaseUrl: z.string().min(1, 'databaseUrl must be a PostgreSQL connection string'),
  // Checked by loadSecurityConfig when they come from the environment; here only their shape.
  databaseTls: z
    .custom<PostgresTlsOptions>(
      (v) => typeof v === 'object' && v !== null && typeof (v as { mode?: unknown }).mode === 'string',
      'databaseTls must be { mode, ca?, cert?, key? }',
    )
    .optional(),
  databasePassword: z.string().min(1, 'databasePassword must not be empty').optional(),
  kafkaSecurity: z
    .custom<KafkaSecurityOptions>((v) => typeof v === 'object' && v !== null, 'kafkaSecurity must be { ssl?, sasl? }')
    .optional(),
  brokers: z
    .array(z.string().regex(/^[^:]+:\d+$/, 'brokers must be host:port'))
    .min(1, 'brokers must name at least one broker'),
  replyTopic: z.string().min(1).default(REPLY_TOPIC),
  groupId: z.string().min(1).default('sous-control-plane'),
  replyPartitions: z.number().int().positive().default(6),
  partitionsConsumedConcurrently: z.number().int().positive().default(4),
  timerConcurrency: z.number().int().positive().default(4),
  deadJobPoolAfterMs: z.number().int().min(1000).default(15_000),
  poolSize: z.number().int().positive().default(10),
  maxInlinePayloadBytes: z
    .number()
    .int()
    .positive()
    .default(64 * 1024),
  migrate: z.boolean().default(true),
  consume: z.boolean().default(true),
  ingestDeadLetters: z.boolean().default(true),
  deadLetterTopicPattern: z
    .string()
    .refine((p) => {
      try {
        new RegExp(p);
        return true;
      } catch {
        return false;
      }
    }, 'deadLetterTopicPattern must be a regular expression')
    .default('\\.DLT$'),
  deadLetterGroupId: z.string().min(1).default('sous-dead-letters'),
  deadLetterRefreshMs: z.number().int().positive().default(10_000),
  replyBatchSize: z.number().int().positive().default(50),
  replyTransactions: z.number().int().positive().default(2),
  stateCacheSize: z.number().int().min(0, 'stateCacheSize must be 0 or more').default(10_000),
  stateSnapshotEvery: z.number().int().min(1, 'stateSnapshotEvery must be at least 1').default(128),
  connectUrl: z.url({ protocol: /^https?$/, error: 'connectUrl must be an http(s) URL' }).optional(),
  connectorName: z.string().min(1).default('sous-outbox'),
  connectorCheckMs: z.number().int().positive().default(10_000),
  metricsPort: z.number().int().min(0, 'metricsPort must be a port (0: any free one)').max(65535).optional(),
  metricsHost: z.string().min(1).default('127.0.0.1'),
  sampleGauges: z.boolean().optional(),
  sampleIntervalMs: z.number().int().min(100, 'sampleIntervalMs must be at least 100').default(10_000),
  checkTimeoutMs: z.number().int().positive().default(2_000),
  outboxSlot: z.string().min(1).default('sous_outbox'),
  processMetrics: z.boolean().default(true),
  retention: z
    .union([
      z.literal('off'),
      z.literal('forever'),
      z
        .number()
        .int('retention must be whole milliseconds, forever or off')
        .min(MIN_RETENTION_MS, 'retention must be at least 60000 ms (1 minute), forever or off'),
    ])
    .default(DEFAULT_RETENTION_MS),
  routing: z.enum(['registry', 'static'], { error: 'routing must be registry or static' }).default('registry'),
  region: regionSchema.optional(),
  remoteRegions: z.array(regionSchema).default([]),
  shardTimeoutMs: z.number().int().min(500, 'shardTimeoutMs must be at least 500').default(10_000),
  shardMirrorIntervalMs: z.number().int().positive().default(5_000),
  unknownExecutionGraceMs: z.number().int().nonnegative().default(10_000),
  waitingSweepMs: z.number().int().min(100, 'waitingSweepMs must be at least 100').default(2_000),
  retentionBatchSize: z
    .number()
    .int()
    .min(1, 'retentionBatchSize must be 1 to 10000')
    .max(10_000, 'retentionBatchSize must be 1 to 10000')
    .default(500),
});

/** Options of a control-plane process. */
export interface ControlPlaneOptions {
  /** PostgreSQL holding sous's tables (and graphile-worker's). */
  readonly databaseUrl: string;
  /**
   * TLS of every PostgreSQL connection of the process: its pool, graphile-worker's, the
   * API's LISTEN. A connection string's own `sslmode` takes precedence.
   * @default the connection string decides (SOUS_PG_SSL_MODE, SOUS_PG_SSL_CA_FILE, ...)
   */
  readonly databaseTls?: PostgresTlsOptions;
  /** PostgreSQL password kept out of `databaseUrl`. @default none (SOUS_DATABASE_PASSWORD_FILE) */
  readonly databasePassword?: string;
  /** Kafka brokers, host:port. */
  readonly brokers: readonly string[];
  /** TLS and SASL of every Kafka client of the process. @default plaintext (SOUS_KAFKA_SSL*, SOUS_KAFKA_SASL_*) */
  readonly kafkaSecurity?: KafkaSecurityOptions;
  /** Topic workers reply on. @default 'sous.replies' */
  readonly replyTopic?: string;
  /** Consumer group of the control-plane processes: each reply partition goes to one. @default 'sous-control-plane' */
  readonly groupId?: string;
  /** Partitions of the reply topic when this process creates it. @default 6 */
  readonly replyPartitions?: number;
  /** Reply partitions (so executions) decided at once by this process. @default 4 */
  readonly partitionsConsumedConcurrently?: number;
  /** Timer jobs run at once by this process. @default 4 */
  readonly timerConcurrency?: number;
  /**
   * A timer job locked this long by a control plane whose process is gone is handed to a
   * live one (checked every third of it); graphile-worker alone would wait 4 hours. @default 15000
   */
  readonly deadJobPoolAfterMs?: number;
  /** PostgreSQL connections of this process. @default 10 */
  readonly poolSize?: number;
  /** Step inputs larger than this go by reference. @default 65536 */
  readonly maxInlinePayloadBytes?: number;
  /** Apply migrations on start. @default true */
  readonly migrate?: boolean;
  /** Consume replies and run timers (false: an API-only process). @default true */
  readonly consume?: boolean;
  /** Copy every dead-letter topic into sous.dead_letter (only when consuming). @default true */
  readonly ingestDeadLetters?: boolean;
  /** Which topics are dead-letter topics (a regular expression). @default '\\.DLT$' */
  readonly deadLetterTopicPattern?: string;
  /** Consumer group of the dead-letter ingest. @default 'sous-dead-letters' */
  readonly deadLetterGroupId?: string;
  /** How often the ingest looks for new dead-letter topics. @default 10000 */
  readonly deadLetterRefreshMs?: number;
  /**
   * Replies of one partition decided together in one transaction (1: one transaction per
   * reply). Fewer commits, so fewer WAL flushes, under load. A full batch still takes the
   * replies that follow to executions already in it, up to ten times as
   * many (one lock and one state write per execution: a large forEach's replies are cheap
   * to decide together, dear to cut into many transactions). @default 50
   */
  readonly replyBatchSize?: number;
  /**
   * Transactions deciding replies at once in this process. Chunks of several partitions
   * that arrive while they run are decided together in the next one (up to
   * `replyBatchSize` × `partitionsConsumedConcurrently` replies). @default 2
   */
  readonly replyTransactions?: number;
  /**
   * Running executions whose state this process keeps between decisions (the least
   * recently decided dropped first). A state not cached, or last written by another
   * process, is rebuilt from its snapshot and the events after it. @default 10000
   */
  readonly stateCacheSize?: number;
  /**
   * Events between two snapshots of an execution's state (none is written at start or at
   * the end): the most a decision without the state cached replays. @default 128
   */
  readonly stateSnapshotEvery?: number;
  /**
   * Kafka Connect REST address. When set (and consuming), the process checks the outbox
   * connector every `connectorCheckMs` and restarts it when it FAILED: Debezium does not
   * recover by itself when PostgreSQL restarts under it. @default undefined (no checks)
   */
  readonly connectUrl?: string;
  /** Name of the outbox connector in Kafka Connect. @default 'sous-outbox' */
  readonly connectorName?: string;
  /** Time between two checks of the outbox connector. @default 10000 */
  readonly connectorCheckMs?: number;
  /**
   * Serves /metrics, /healthz and /readyz over HTTP on this port (0: any free one; see
   * `probesUrl`). An API process serves them on its own port instead.
   * @default none: not served (scripts/control-plane.ts serves SOUS_METRICS_PORT, 9464)
   */
  readonly metricsPort?: number;
  /** Interface the metrics port listens on (0.0.0.0 for a scraper elsewhere). @default '127.0.0.1' */
  readonly metricsHost?: string;
  /**
   * Read the cluster-wide gauges (backlog, outbox age and slot lag, dead letters, timers,
   * executions by status) every `sampleIntervalMs`. Each control-plane process reads the
   * same values: aggregate them with max(), not sum(). @default the value of `consume`
   */
  readonly sampleGauges?: boolean;
  /** How often the gauges are read. @default 10000 */
  readonly sampleIntervalMs?: number;
  /** Longest a readiness check, a sampled read or the API's lag read may take. @default 2000 */
  readonly checkTimeoutMs?: number;
  /** The connector's replication slot, whose lag and age the outbox gauges show. @default 'sous_outbox' */
  readonly outboxSlot?: string;
  /**
   * Add the process's own metrics (CPU, memory, event-loop lag, GC) to this registry: off
   * when another registry of the same process already has them. @default true
   */
  readonly processMetrics?: boolean;
  /**
   * Finished executions (completed, failed, cancelled) older than this many milliseconds
   * since they finished are purged with all their rows, sub-recipe executions with their
   * root, by a cron task every minute (only processes that consume run it). A recipe's
   * own `retention` wins. `forever`: only recipes that declare a retention are purged;
   * `off`: nothing is purged. At least 60000. @default 2592000000 (30 days)
   */
  readonly retention?: number | 'forever' | 'off';
  /** Root executions purged per transaction (a batch also stops at 100,000 events). @default 500 */
  readonly retentionBatchSize?: number;
  /**
   * A shard (worker process) silent this long is dropped from the registry view: its
   * steps wait visibly if no other shard can take them. Keep it a few of the workers'
   * heartbeat intervals (2 s by default). @default 10000 (SOUS_SHARD_TIMEOUT_MS)
   */
  readonly shardTimeoutMs?: number;
  /**
   * `registry`: each step goes where the live shards say (residency, contract versions),
   * and waits visibly when no shard can take it. `static`: every command goes to its
   * capability's (or region's) topic at once and is never held — for workers that do not
   * announce themselves (e.g. written against the protocol in another language); contract
   * versions are then not routed, and this process keeps no view of the shards (its
   * `shards()` is empty). @default 'registry' (SOUS_ROUTING)
   */
  readonly routing?: 'registry' | 'static';
  /**
   * This control plane's region (its own PostgreSQL and Kafka). With `remoteRegions`, a
   * step resident in one of those goes through the relay to that region's shards, and
   * its replies come back through this region's relay topic (docs/regions.md).
   * @default none (SOUS_REGION)
   */
  readonly region?: string;
  /** Regions a relay links to this one. Needs `region`. @default [] (SOUS_REMOTE_REGIONS, comma-separated) */
  readonly remoteRegions?: readonly string[];
  /** Least time between two writes of mere heartbeats to sous.shard (changes are written at once). @default 5000 */
  readonly shardMirrorIntervalMs?: number;
  /**
   * How often held commands (steps no live shard can take) are looked at again besides
   * when the shards change: covers a decision that raced a shard's arrival and commands
   * another control plane held. @default 2000
   */
  readonly waitingSweepMs?: number;
  /**
   * How long a reply naming an execution this process cannot see is tried again before
   * it is dead-lettered (a commit can reach Kafka through Debezium a moment before it is
   * visible to other sessions). @default 10000
   */
  readonly unknownExecutionGraceMs?: number;
  readonly logger?: Logger;
}

/** The options with their defaults filled in, checked once when the control plane is made. */
export type ControlPlaneConfig = z.infer<typeof optionsSchema>;

/**
 * Checks the options and fills in their defaults, once: a bad option throws
 * ConfigInvalidError naming every problem, before anything connects.
 */
export function compileControlPlaneOptions(options: ControlPlaneOptions): { config: ControlPlaneConfig; log: Logger } {
  const { logger: givenLogger, ...rest } = options;
  const parsed = optionsSchema.safeParse(rest);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`);
    throw new ConfigInvalidError(`invalid control-plane options: ${problems.join('; ')}`, { cause: parsed.error });
  }
  const config = parsed.data;
  if (config.remoteRegions.length > 0 && config.region === undefined) {
    throw new ConfigInvalidError(
      "invalid control-plane options: remoteRegions needs region (this control plane's own)",
    );
  }
  return { config, log: (givenLogger ?? rootLogger).child({ component: 'control-plane' }) };
}
