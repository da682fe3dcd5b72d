import { setTimeout as sleep } from 'node:timers/promises';
import { compensationPlanOf, type CompensationPlanView } from './compensation-plan.js';
import { ROOT_CONTEXT, trace, type Context, type Span } from '@opentelemetry/api';
import { EventEmitter } from 'node:events';
import { run as runGraphile, type Runner, type Task, type WorkerEvents } from 'graphile-worker';
import { unlockJobsOfDeadPools } from '../store/job-locks.js';
import { JobPoolPresence } from './job-pool-presence.js';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import pg from 'pg';
import { postgresConnectionFailure } from '../db/connection-errors.js';
import { createDatabase, pgConnectionConfig, type PostgresConnection } from '../db/database.js';
import { migrateAll } from '../db/migrate.js';
import type { Database } from '../db/schema.js';
import { isDataException } from '../db/sqlstate.js';
import { ConfigInvalidError } from '../errors.js';
import { graphileLogger } from '../graphile-logger.js';
import { runJsonConsumer, type RecordOrigin, type RunningConsumer } from '../kafka/json-consumer.js';
import { startConnectorWatchdog, type ConnectorWatchdog } from '../outbox/connector-watchdog.js';
import type { LiveShard } from '../shards/registry-view.js';
import type { StepNeeds } from '../shards/route.js';
import { requestShardControl, type ShardControlRequested } from './shard-control.js';
import { ShardRegistry, type ShardListener } from './shard-registry.js';
import { WaitingCommandReleaser } from './waiting-commands.js';
import { publishDeadLetter } from '../kafka/dead-letter.js';
import { kafkaConnectionFailure } from '../kafka/connection-errors.js';
import { createKafka, type Kafka } from '../kafka/kafka-client.js';
import type { KafkaSecurityOptions, PostgresTlsOptions } from '../security/config.js';
import { createRecordProducer, type RecordProducer } from '../kafka/producer.js';
import { ensureTopics } from '../kafka/topics.js';
import { logger as rootLogger, type Logger } from '../logger.js';
import { deadLetterTopic, REPLY_TOPIC } from '../protocol/messages.js';
import type { RecipePlan } from '../recipe/plan.js';
import { applyReplies, applyReply, parseReply, type BatchOutcome, type ReplyTopicMessage } from './apply-reply.js';
import { createBatchCoalescer } from './batch-coalescer.js';
import {
  discardDeadLetters,
  reprocessDeadLetters,
  runDeadLetterIngest,
  type DeadLetterIngest,
  type DeadLetterSelection,
  type ReprocessOutcome,
} from './dead-letters.js';
import { ExecutionNotFoundError, ReplyInvalidError, ReplyNotStorableError } from './errors.js';
import {
  cancelExecution,
  pauseExecution,
  rerunFromStep,
  resumeExecution,
  retryStep,
  skipStep,
  signalExecution,
  startExecution,
  startExecutions,
  type StartOptions,
  type Started,
} from './executions.js';
import { PlanCache } from './plan-cache.js';
import { registerRecipe, type RegisteredRecipe } from './recipes.js';
import { ExecutionStates } from './execution-states.js';
import { defaultDecisionEnvironment, type DecisionEnvironment } from './run-decision.js';
import { staticRoute } from './decision-environment.js';
import { crossRegionRoute } from '../regions/cross-region-route.js';
import { runRegionInbox } from './region-inbox.js';
import type { OutboxConsumer } from '../kafka/outbox-consumer.js';
import { regionSchema } from '../protocol/shards.js';
import { RETENTION_TASK, retentionCrontab, retentionTask } from './retention.js';
import { DEFAULT_RETENTION_MS, MIN_RETENTION_MS } from './retention-policy.js';
import { timerTask } from './timers.js';
import {
  createSchedule,
  deleteSchedule,
  pauseSchedule,
  resumeSchedule,
  SCHEDULE_CRONTAB,
  SCHEDULE_TASK,
  scheduleOf,
  scheduleTask,
  type Schedule,
  type ScheduleDefinition,
} from './schedules.js';
import { DEAD_LETTER_JOB_TASK, deadLetterJobTask, resumeStaleDeadLetterJobs } from './dead-letter-job.js';
import { AdminHandle, describeCluster } from '../kafka/consumer-lag.js';
import { readCapabilityBacklog, type CapabilityBacklog } from '../observability/capability-backlog.js';
import { ClusterSampler } from '../observability/cluster-sampler.js';
import { ControlPlaneMetrics } from '../observability/control-plane-metrics.js';
import { DecisionObserver } from '../observability/decision-observer.js';
import { CheckFailedError } from '../observability/errors.js';
import { migrationsCurrentCheck } from '../observability/migrations-current.js';
import { serveProbes, type ProbeServer } from '../observability/probe-server.js';
import type { Probes } from '../observability/probes.js';
import { checkReadiness, type Check, type Readiness } from '../observability/readiness.js';
import type { AuditHook } from '../store/audit.js';
import { ping } from '../store/observability.js';
import { ATTR } from '../observability/span-attributes.js';
import { contextFromHeaders } from '../observability/trace-context.js';
import { consumerSpan, endSpan } from '../observability/tracing.js';

/** A reply taken from Kafka, with its CONSUMER span's context (its decision's parent). */
interface ReceivedReply {
  readonly message: ReplyTopicMessage;
  readonly trace: Context;
}

/**
 * How many times `replyBatchSize` replies one batch may hold when the replies past the
 * first `replyBatchSize` go to executions already in it (a hot execution: a forEach).
 */
export const HOT_EXECUTION_BATCH = 10;

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
   * replies that follow to executions already in it, up to `HOT_EXECUTION_BATCH` times as
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

/** What a control plane serves at /metrics and /readyz, and what the API reads of it. */
export interface ControlPlaneObservability extends Probes {
  readonly metrics: ControlPlaneMetrics;
  /** Where /metrics, /healthz and /readyz are served once started; undefined without `metricsPort`. */
  readonly probesUrl: string | undefined;
  /** Per capability: attempts waiting to start, the oldest one's age, and Kafka consumer lag. */
  backlog(): Promise<CapabilityBacklog[]>;
  /** Reads the sampled gauges now (tests; the sampler also does every interval). */
  sampleNow(): Promise<void>;
}

export interface ControlPlane {
  readonly db: Kysely<Database>;
  readonly environment: DecisionEnvironment;
  readonly observability: ControlPlaneObservability;
  /**
   * Whether this process can do its work: PostgreSQL and Kafka answer, sous's migrations
   * are applied, and (when consuming) the reply consumer is in its group.
   */
  readiness(): Promise<Readiness>;
  /** Migrates, creates the reply topics, then consumes replies and runs timers. */
  start(): Promise<void>;
  /** Stops consuming and running timers, then closes connections. */
  stop(): Promise<void>;
  registerRecipe(plan: RecipePlan, source?: string): Promise<RegisteredRecipe>;
  startExecution(options: StartOptions): Promise<Started>;
  /**
   * Starts up to 10,000 executions in one transaction (all or none), results in the order
   * given; for a client that starts a batch of work at once.
   */
  startExecutions(starts: readonly StartOptions[]): Promise<Started[]>;
  cancelExecution(executionId: string, reason?: string): Promise<string>;
  pauseExecution(executionId: string): Promise<string>;
  resumeExecution(executionId: string): Promise<string>;
  signalExecution(executionId: string, name: string, payload?: unknown): Promise<string>;
  retryStep(executionId: string, stepKey: string): Promise<string>;
  skipStep(executionId: string, stepKey: string, output?: unknown): Promise<string>;
  rerunFromStep(executionId: string, stepId: string): Promise<string>;
  /**
   * The compensations the execution would run if it failed now, in order, with their
   * inputs; changes nothing. Undefined when there is no such execution.
   */
  compensationPlan(executionId: string): Promise<CompensationPlanView | undefined>;
  /** Publishes dead letters again (optionally with a replacement payload); a parked step resumes. */
  reprocessDeadLetters(selection: DeadLetterSelection, actor: string, payload?: unknown): Promise<ReprocessOutcome[]>;
  discardDeadLetters(selection: DeadLetterSelection, actor: string): Promise<string[]>;
  /** The live shards (worker processes) as this control plane sees them. */
  shards(): LiveShard[];
  /** Asks a live shard to drain: no new commands, running ones finish; its queued work goes to the others. */
  drainShard(shardId: string, actor?: string): Promise<ShardControlRequested>;
  /** Asks a drained shard to take commands again. */
  resumeShard(shardId: string, actor?: string): Promise<ShardControlRequested>;
  /** Called when a shard joins, leaves, or changes health or capabilities; returns an unsubscribe. */
  onShardsChanged(listener: ShardListener): () => void;
  /**
   * Starts `recipe` on a cron schedule (docs/schedules.md); the same definition under the
   * same name again returns the first (`created: false`).
   */
  createSchedule(definition: ScheduleDefinition, actor?: string): Promise<{ schedule: Schedule; created: boolean }>;
  /** Starts nothing more until resumed. */
  pauseSchedule(id: string): Promise<Schedule>;
  /** Runs again from the next fire (fires while paused are not run). */
  resumeSchedule(id: string): Promise<Schedule>;
  /** Deletes a schedule and its run history; false when there was none. */
  deleteSchedule(id: string): Promise<boolean>;
  /**
   * The same actions, each writing `audit` in the transaction of the change it makes, so
   * the audit row and the change commit together (the API's mutations use these).
   */
  audited(audit: AuditHook): AuditedActions;
}

/** What the control plane does that changes state (and so is audited when the API asks). */
export type AuditedActions = Pick<
  ControlPlane,
  | 'registerRecipe'
  | 'startExecution'
  | 'startExecutions'
  | 'cancelExecution'
  | 'pauseExecution'
  | 'resumeExecution'
  | 'signalExecution'
  | 'retryStep'
  | 'skipStep'
  | 'rerunFromStep'
  | 'reprocessDeadLetters'
  | 'discardDeadLetters'
  | 'drainShard'
  | 'resumeShard'
  | 'createSchedule'
  | 'pauseSchedule'
  | 'resumeSchedule'
  | 'deleteSchedule'
>;

/**
 * What an application drives: the control plane without its internals (the database handle and
 * the decision environment), which `sous` does not export. sous' own API reaches them through
 * `controlPlaneInternals`.
 */
export type PublicControlPlane = Omit<ControlPlane, 'db' | 'environment' | 'observability' | 'audited'>;

const internals = new WeakMap<PublicControlPlane, ControlPlane>();

/** The whole control plane behind a public one made by `createControlPlane`. */
export function controlPlaneInternals(controlPlane: PublicControlPlane | ControlPlane): ControlPlane {
  if ('db' in controlPlane) return controlPlane;
  const found = internals.get(controlPlane);
  if (found === undefined) throw new TypeError('not a control plane made by createControlPlane');
  return found;
}

export function createControlPlane(options: ControlPlaneOptions): ControlPlane {
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
  const log = (givenLogger ?? rootLogger).child({ component: 'control-plane' });
  const connection: PostgresConnection = {
    connectionString: config.databaseUrl,
    ...(config.databaseTls === undefined ? {} : { tls: config.databaseTls }),
    ...(config.databasePassword === undefined ? {} : { password: config.databasePassword }),
  };
  const db = createDatabase({ ...connection, poolSize: config.poolSize, applicationName: 'sous-control-plane' });
  const metrics = new ControlPlaneMetrics({ processMetrics: config.processMetrics });
  const plans = new PlanCache();
  const observer = new DecisionObserver(metrics, (name, version) => plans.peek(name, version));
  const kafka: Kafka = createKafka({
    brokers: config.brokers,
    clientId: 'sous-control-plane',
    ...(config.kafkaSecurity === undefined ? {} : { security: config.kafkaSecurity }),
  });
  const registry = new ShardRegistry({
    kafka,
    db,
    timeoutMs: config.shardTimeoutMs,
    mirrorIntervalMs: config.shardMirrorIntervalMs,
    log,
  });
  const localRoute = config.routing === 'registry' ? (needs: StepNeeds) => registry.route(needs) : staticRoute;
  const route =
    config.region === undefined
      ? localRoute
      : crossRegionRoute({ local: config.region, remotes: new Set(config.remoteRegions) }, localRoute);
  const releaser = new WaitingCommandReleaser(db, route, config.waitingSweepMs, log);
  registry.onChange(() => releaser.poke());
  const environment = defaultDecisionEnvironment(plans, {
    route,
    states: new ExecutionStates({ cacheSize: config.stateCacheSize, snapshotEvery: config.stateSnapshotEvery }),
    replyTopic: config.replyTopic,
    ...(config.region === undefined ? {} : { region: config.region, remoteRegions: new Set(config.remoteRegions) }),
    maxInlinePayloadBytes: config.maxInlinePayloadBytes,
    observe: observer.observe,
  });
  // One admin for readiness, lag reads and sampling: made again after a failure (see AdminHandle).
  const admin = new AdminHandle(kafka);
  const sampleGauges = config.sampleGauges ?? config.consume;
  const sampler = new ClusterSampler({
    db,
    admin,
    metrics,
    intervalMs: config.sampleIntervalMs,
    timeoutMs: config.checkTimeoutMs,
    slotName: config.outboxSlot,
    timerTask: environment.timerTask,
    log,
  });
  let probeServer: ProbeServer | undefined;
  const checks: Record<string, Check> = {
    postgres: async () => {
      await ping(db);
      return undefined;
    },
    kafka: async () => `${(await admin.with(describeCluster)).brokers} broker(s)`,
    migrations: migrationsCurrentCheck(db),
  };
  if (config.consume) {
    checks.consumers = async () => {
      if (consumer === undefined) throw new CheckFailedError('the reply consumer has not started');
      if (!consumer.joined()) throw new CheckFailedError(`the reply consumer is not in group ${config.groupId}`);
      return `in group ${config.groupId}`;
    };
  }
  const readiness = () => checkReadiness(checks, config.checkTimeoutMs);
  let consumer: RunningConsumer | undefined;
  let runner: Runner | undefined;
  let presence: JobPoolPresence | undefined;
  let deadPoolSweep: NodeJS.Timeout | undefined;
  let graphilePool: pg.Pool | undefined;
  let ingest: DeadLetterIngest | undefined;
  let watchdog: ConnectorWatchdog | undefined;
  let inbox: OutboxConsumer | undefined;

  const producer: RecordProducer = createRecordProducer(kafka);
  /** A reply the control plane cannot apply goes to the reply topic's DLT, never nowhere. */
  const deadLetter = async (error: Error & { code?: string }, origin: RecordOrigin) => {
    metrics.replies.inc({ outcome: 'dead_lettered' });
    log.error(
      { reason: error.message, topic: origin.topic, partition: origin.partition, offset: origin.offset },
      'reply dead-lettered',
    );
    await publishDeadLetter(producer, {
      topic: origin.topic,
      partition: origin.partition,
      message: origin.message,
      error,
      consumerGroup: config.groupId,
      attempts: 1,
    });
  };

  /**
   * The CONSUMER span of one reply record (`process <reply topic>`), child of the
   * context its headers carry (the worker's PRODUCER span): the parent of its decision.
   */
  const replySpan = (origin: RecordOrigin): Span =>
    consumerSpan(contextFromHeaders(origin.message.headers), {
      topic: origin.topic,
      partition: origin.partition,
      offset: origin.offset,
      key: origin.key,
      consumerGroup: config.groupId,
    });
  const describeReply = (span: Span, message: ReplyTopicMessage) =>
    span.setAttributes({
      [ATTR.messagingMessageId]: message.messageId,
      [ATTR.executionId]: message.executionId,
      [ATTR.replyKind]: message.kind,
    });

  /**
   * One parsed reply, one transaction; what can never apply goes to the DLT.
   *
   * A reply naming an execution this process cannot see is tried again for a while
   * (`unknownExecutionGraceMs`) before it is dead-lettered: PostgreSQL's logical decoding
   * streams a transaction once its commit record is flushed, a moment before the commit is
   * visible to other sessions, so under heavy load a command can reach a worker and its
   * reply come back inside that moment (seen: 4 of 1,000 bulk-started executions on a
   * machine at load 10). A command exists only for a committed execution, so waiting is safe.
   */
  const applyOne = async (message: ReplyTopicMessage, origin: RecordOrigin, span: Span): Promise<void> => {
    const giveUpAt = Date.now() + config.unknownExecutionGraceMs;
    for (let delay = 50; ; delay = Math.min(delay * 2, 2_000)) {
      try {
        await applyOnce(message, span);
        return;
      } catch (error) {
        const left = giveUpAt - Date.now();
        if (error instanceof ExecutionNotFoundError && left > 0) {
          // The last try comes when the grace is over, not before.
          await sleep(Math.min(delay, left));
          continue;
        }
        return settleFailed(error, message, origin, span);
      }
    }
  };
  const applyOnce = async (message: ReplyTopicMessage, span: Span): Promise<void> => {
    const outcome = await observer.run(
      'reply',
      () => applyReply(db, environment, message, trace.setSpan(ROOT_CONTEXT, span)),
      { triggers: (o) => (o === 'applied' ? 1 : 0), runSeconds: runSecondsOf([message]) },
    );
    metrics.replyBatchSize.observe(1);
    metrics.replies.inc({ outcome: outcome === 'applied' ? 'applied' : 'duplicate' });
    span.setAttribute('sous.reply.outcome', outcome);
  };
  /** A reply that failed for good goes to the DLT; anything passing is thrown for kafkajs to retry. */
  const settleFailed = async (
    error: unknown,
    message: ReplyTopicMessage,
    origin: RecordOrigin,
    span: Span,
  ): Promise<void> => {
    if (error instanceof ExecutionNotFoundError) {
      span.setAttribute('sous.reply.outcome', 'dead_lettered');
      return deadLetter(error, origin);
    }
    if (isDataException(error)) {
      span.setAttribute('sous.reply.outcome', 'dead_lettered');
      const reason = error instanceof Error ? error.message : String(error);
      return deadLetter(
        new ReplyNotStorableError(`reply ${message.messageId}: PostgreSQL refused a value (${reason})`, {
          cause: error,
        }),
        origin,
      );
    }
    throw error; // Transient (connection, deadlock): kafkajs retries the record.
  };

  /** One record, one transaction. */
  const handleOne = async (value: unknown, origin: RecordOrigin): Promise<void> => {
    const span = replySpan(origin);
    try {
      let message;
      try {
        message = parseReply(value);
      } catch (error) {
        if (!(error instanceof ReplyInvalidError)) throw error;
        span.setAttribute('sous.reply.outcome', 'dead_lettered');
        await deadLetter(error, origin);
        endSpan(span, error);
        return;
      }
      describeReply(span, message);
      await applyOne(message, origin, span);
      endSpan(span);
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  };

  /**
   * Replies of one partition decided in one transaction (one commit for the chunk), shared
   * with the chunks of other partitions that arrive meanwhile (batch-coalescer.ts). If the
   * transaction fails as a whole, each reply of the chunk is tried alone, so one bad reply
   * cannot hold the others back; replies already applied change nothing the second time.
   */
  const replies = createBatchCoalescer<ReceivedReply, BatchOutcome>({
    apply: async (received) => {
      const messages = received.map((r) => r.message);
      const parents = new Map(received.map((r) => [r.message, r.trace]));
      const outcome = await observer.run('reply', () => applyReplies(db, environment, messages, parents), {
        triggers: (o) => o.applied,
        runSeconds: runSecondsOf(messages),
      });
      metrics.replyBatchSize.observe(messages.length);
      metrics.replies.inc({ outcome: 'applied' }, outcome.applied);
      metrics.replies.inc({ outcome: 'duplicate' }, outcome.duplicates);
      return outcome;
    },
    maxInFlight: config.replyTransactions,
    maxItems: config.replyBatchSize * config.partitionsConsumedConcurrently,
  });

  const handleBatch = async (records: readonly { value: unknown; origin: RecordOrigin }[]): Promise<void> => {
    const parsed: { message: ReplyTopicMessage; origin: RecordOrigin; span: Span }[] = [];
    for (const { value, origin } of records) {
      const span = replySpan(origin);
      try {
        const message = parseReply(value);
        describeReply(span, message);
        parsed.push({ message, origin, span });
      } catch (error) {
        endSpan(span, error);
        if (error instanceof ReplyInvalidError) await deadLetter(error, origin);
        else throw error;
      }
    }
    if (parsed.length === 0) return;
    try {
      let outcome;
      try {
        outcome = await replies.submit(
          parsed.map(({ message, span }) => ({ message, trace: trace.setSpan(ROOT_CONTEXT, span) })),
        );
      } catch (error) {
        log.warn(
          { reason: error instanceof Error ? error.message : String(error), replies: parsed.length },
          'a batch of replies failed; applying them one at a time',
        );
        for (const { message, origin, span } of parsed) await applyOne(message, origin, span);
        for (const { span } of parsed) endSpan(span);
        return;
      }
      // Not visible yet, or never: each is tried alone, in order, for the grace period.
      for (const message of outcome.unknown) {
        const entry = parsed.find((p) => p.message === message);
        if (entry !== undefined) await applyOne(message, entry.origin, entry.span);
      }
      for (const { span } of parsed) endSpan(span);
    } catch (error) {
      // kafkajs retries the chunk: these spans end failed, the retry makes new ones.
      for (const { span } of parsed) endSpan(span, error);
      throw error;
    }
  };

  /** A graphile task whose decisions are counted once its transaction commits. */
  const observedTask =
    (trigger: 'timer' | 'operator', task: Task): Task =>
    (payload, helpers) =>
      observer.run(trigger, async () => {
        await task(payload, helpers);
      });

  const observability: ControlPlaneObservability = {
    registry: metrics.registry,
    metrics,
    readiness,
    get probesUrl() {
      return probeServer?.url;
    },
    backlog: () => readCapabilityBacklog(db, admin, config.checkTimeoutMs),
    sampleNow: () => sampler.sampleOnce(),
  };

  /** The actions, each writing `audit` (if given) in the transaction of its change. */
  const actions = (audit?: AuditHook): AuditedActions => ({
    registerRecipe: (plan, source) => registerRecipe(db, plan, source, config.region, audit),
    startExecution: (start) => observer.run('start', () => startExecution(db, environment, start, audit)),
    startExecutions: (starts) =>
      observer.run('start', () => startExecutions(db, environment, starts, audit), {
        triggers: (started) => started.length,
      }),
    cancelExecution: (id, reason) =>
      observer.run('operator', () => cancelExecution(db, environment, id, reason, audit)),
    pauseExecution: (id) => observer.run('operator', () => pauseExecution(db, environment, id, audit)),
    resumeExecution: (id) => observer.run('operator', () => resumeExecution(db, environment, id, audit)),
    signalExecution: (id, name, payload) =>
      observer.run('operator', () => signalExecution(db, environment, id, name, payload, audit)),
    retryStep: (id, stepKey) => observer.run('operator', () => retryStep(db, environment, id, stepKey, audit)),
    skipStep: (id, stepKey, output) =>
      observer.run('operator', () => skipStep(db, environment, id, stepKey, output, audit)),
    rerunFromStep: (id, stepId) => observer.run('operator', () => rerunFromStep(db, environment, id, stepId, audit)),
    reprocessDeadLetters: (selection, actor, payload) =>
      observer.run('operator', () => reprocessDeadLetters(db, environment, selection, actor, payload, audit)),
    discardDeadLetters: (selection, actor) => discardDeadLetters(db, selection, actor, audit),
    drainShard: (shardId, actor) =>
      requestShardControl(db, registry.get(shardId), shardId, 'drain', actor ?? null, audit),
    resumeShard: (shardId, actor) =>
      requestShardControl(db, registry.get(shardId), shardId, 'resume', actor ?? null, audit),
    createSchedule: async (definition, actor = 'application') => {
      const { schedule, created } = await createSchedule(db, environment, definition, actor, undefined, audit);
      return { schedule: scheduleOf(schedule), created };
    },
    pauseSchedule: async (id) => scheduleOf(await pauseSchedule(db, id, environment.now(), audit)),
    resumeSchedule: async (id) => scheduleOf(await resumeSchedule(db, id, environment.now(), audit)),
    deleteSchedule: (id) => deleteSchedule(db, id, audit),
  });

  const startParts = async (): Promise<void> => {
    // Probes first: /healthz answers and /readyz says why not ready while starting.
    if (config.metricsPort !== undefined) {
      probeServer = await serveProbes({
        host: config.metricsHost,
        port: config.metricsPort,
        probes: observability,
        portSetting: 'metricsPort (SOUS_METRICS_PORT)',
        log,
      });
    }
    if (config.migrate) await migrateAll(db, connection);
    // Routing needs the whole registry: read up to its end before any decision is made.
    // Static routing needs none, and keeps no Kafka consumer for it.
    if (config.routing === 'registry') await registry.start();
    releaser.start();
    releaser.poke();
    if (sampleGauges) sampler.start();
    if (!config.consume) return;
    await ensureTopics(kafka, [config.replyTopic], { partitions: config.replyPartitions });
    await ensureTopics(kafka, [deadLetterTopic(config.replyTopic)], { partitions: 1 });
    // graphile-worker gets a pool with the same TLS and password as every other connection.
    graphilePool = new pg.Pool({ ...pgConnectionConfig(connection), max: config.timerConcurrency + 2 });
    graphilePool.on('error', (error: Error) => {
      log.warn({ component: 'graphile-pool', reason: error.message }, 'idle PostgreSQL connection lost');
    });
    // A checked-out connection's error reaches graphile-worker through its query; this keeps
    // pg from throwing it at the process as well.
    graphilePool.on('connect', (client) => client.on('error', () => undefined));
    // The job pool's presence lock, taken as the pool is made (see job-pool-presence.ts).
    const poolEvents: WorkerEvents = new EventEmitter();
    poolEvents.on('pool:create', ({ workerPool }) => {
      if (presence !== undefined) return;
      presence = new JobPoolPresence(pgConnectionConfig(connection), workerPool.id, log);
      presence.start();
    });
    runner = await runGraphile({
      events: poolEvents,
      pgPool: graphilePool,
      concurrency: config.timerConcurrency,
      noHandleSignals: true,
      pollInterval: 1000,
      logger: graphileLogger,
      taskList: {
        [environment.timerTask]: observedTask('timer', timerTask(db, environment)),
        [DEAD_LETTER_JOB_TASK]: observedTask('operator', deadLetterJobTask(db, environment)),
        // Once a minute (one process per tick): DLT jobs whose worker crashed go on.
        [`${DEAD_LETTER_JOB_TASK}_sweep`]: async () => {
          await resumeStaleDeadLetterJobs(db);
        },
        [SCHEDULE_TASK]: scheduleTask(
          db,
          environment,
          (work) => observer.run('start', work),
          log,
          (report) => {
            for (const outcome of ['started', 'skipped', 'queued', 'missed', 'failed'] as const) {
              if (report[outcome] > 0) metrics.scheduleFires.inc({ outcome }, report[outcome]);
            }
          },
        ),
        [RETENTION_TASK]: retentionTask(
          db,
          { retention: config.retention, batchSize: config.retentionBatchSize },
          log,
          (report) => {
            const purged = metrics.retentionPurged;
            purged.inc({ table: 'execution' }, report.executions);
            purged.inc({ table: 'execution_event' }, report.events);
            purged.inc({ table: 'step' }, report.steps);
            purged.inc({ table: 'step_attempt' }, report.attempts);
            purged.inc({ table: 'foreach_item' }, report.foreachItems);
            purged.inc({ table: 'payload' }, report.payloads);
            purged.inc({ table: 'processed_message' }, report.processedMessages);
            purged.inc({ table: 'region_inbox' }, report.regionInbox);
          },
        ),
      },
      crontab: [
        `* * * * * ${DEAD_LETTER_JOB_TASK}_sweep`,
        SCHEDULE_CRONTAB,
        ...retentionCrontab(config.retention),
      ].join('\n'),
    });
    deadPoolSweep = setInterval(() => {
      unlockJobsOfDeadPools(db, config.deadJobPoolAfterMs / 1000)
        .then((pools) => {
          if (pools.length > 0) log.warn({ pools }, 'timer jobs of dead control planes handed on');
        })
        .catch((error: unknown) => {
          log.warn({ err: error }, 'could not check for timer jobs of dead control planes');
        });
    }, config.deadJobPoolAfterMs / 3);
    deadPoolSweep.unref();
    consumer = await runJsonConsumer({
      kafka,
      groupId: config.groupId,
      topics: [config.replyTopic],
      fromBeginning: true,
      partitionsConsumedConcurrently: config.partitionsConsumedConcurrently,
      onUndecodable: deadLetter,
      handle: handleOne,
      ...(config.replyBatchSize > 1
        ? {
            handleBatch,
            maxBatch: config.replyBatchSize,
            maxBatchSameKey: config.replyBatchSize * HOT_EXECUTION_BATCH,
          }
        : {}),
    });
    if (config.region !== undefined) {
      // Steps other regions send to run here: routed by this region's registry.
      inbox = await runRegionInbox({
        kafka,
        db,
        producer,
        region: config.region,
        groupId: `${config.groupId}.region-inbox`,
        route,
        log,
      });
    }
    if (config.ingestDeadLetters) {
      ingest = await runDeadLetterIngest({
        kafka,
        db,
        groupId: config.deadLetterGroupId,
        topicPattern: new RegExp(config.deadLetterTopicPattern),
        refreshMs: config.deadLetterRefreshMs,
        logger: log,
      });
    }
    if (config.connectUrl !== undefined) {
      watchdog = startConnectorWatchdog({
        connectUrl: config.connectUrl,
        connectorName: config.connectorName,
        intervalMs: config.connectorCheckMs,
        logger: log,
      });
    }
    log.info({ replyTopic: config.replyTopic, groupId: config.groupId }, 'control plane consuming replies');
  };

  const controlPlane: ControlPlane = {
    db,
    environment,
    observability,
    readiness,
    async start() {
      try {
        await startParts();
      } catch (error) {
        // A refused login or a certificate that does not verify: one coded error naming what to fix.
        throw kafkaConnectionFailure(error) ?? postgresConnectionFailure(error) ?? error;
      }
    },
    async stop() {
      await sampler.stop();
      await releaser.stop();
      await registry.stop();
      await inbox?.stop();
      await consumer?.stop();
      await watchdog?.stop();
      await ingest?.stop();
      clearInterval(deadPoolSweep);
      await runner?.stop();
      await presence?.stop();
      await graphilePool?.end();
      await producer.disconnect();
      await admin.close();
      await probeServer?.close();
      await db.destroy();
    },
    ...actions(),
    audited: (audit) => actions(audit),
    compensationPlan: (id) => compensationPlanOf(db, plans, id),
    shards: () => registry.live(),
    onShardsChanged: (listener) => registry.onChange(listener),
  };
  internals.set(controlPlane, controlPlane);
  return controlPlane;
}

/**
 * How long each attempt a final reply finishes ran on its worker: the reply's time less
 * the worker's start, both the worker's clock (so no skew between machines).
 */
function runSecondsOf(messages: readonly ReplyTopicMessage[]): Map<string, number> {
  const seconds = new Map<string, number>();
  for (const m of messages) {
    if ((m.kind !== 'step.completed' && m.kind !== 'step.failed') || m.startedAt === undefined) continue;
    const ran = (Date.parse(m.at) - Date.parse(m.startedAt)) / 1000;
    if (Number.isFinite(ran) && ran >= 0) seconds.set(m.stepExecutionId.toLowerCase(), ran);
  }
  return seconds;
}
