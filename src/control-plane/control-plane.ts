import type { Kysely } from 'kysely';
import { postgresConnectionFailure } from '../db/connection-errors.js';
import { createDatabase, type PostgresConnection } from '../db/database.js';
import { migrateAll } from '../db/migrate.js';
import type { Database } from '../db/schema.js';
import { AdminHandle, describeCluster } from '../kafka/consumer-lag.js';
import { kafkaConnectionFailure } from '../kafka/connection-errors.js';
import { runJsonConsumer, type RunningConsumer } from '../kafka/json-consumer.js';
import { createKafka, type Kafka } from '../kafka/kafka-client.js';
import type { OutboxConsumer } from '../kafka/outbox-consumer.js';
import { createRecordProducer, type RecordProducer } from '../kafka/producer.js';
import { ensureTopics } from '../kafka/topics.js';
import { readCapabilityBacklog, type CapabilityBacklog } from '../observability/capability-backlog.js';
import { ClusterSampler } from '../observability/cluster-sampler.js';
import { ControlPlaneMetrics } from '../observability/control-plane-metrics.js';
import { DecisionObserver } from '../observability/decision-observer.js';
import { CheckFailedError } from '../observability/errors.js';
import { migrationsCurrentCheck } from '../observability/migrations-current.js';
import { serveProbes, type ProbeServer } from '../observability/probe-server.js';
import type { Probes } from '../observability/probes.js';
import { checkReadiness, type Check, type Readiness } from '../observability/readiness.js';
import { startConnectorWatchdog, type ConnectorWatchdog } from '../outbox/connector-watchdog.js';
import { deadLetterTopic } from '../protocol/messages.js';
import { crossRegionRoute } from '../regions/cross-region-route.js';
import type { LiveShard } from '../shards/registry-view.js';
import type { StepNeeds } from '../shards/route.js';
import type { AuditHook } from '../store/audit.js';
import { ping } from '../store/observability.js';
import { compensationPlanOf, type CompensationPlanView } from './compensation-plan.js';
import { controlPlaneActions, type ActionDeps, type ControlPlaneActions } from './control-plane-actions.js';
import { compileControlPlaneOptions, type ControlPlaneOptions } from './control-plane-options.js';
import { runDeadLetterIngest, type DeadLetterIngest } from './dead-letters.js';
import { staticRoute } from './decision-environment.js';
import { ExecutionStates } from './execution-states.js';
import { startJobRunner, type JobRunner } from './job-runner.js';
import { PlanCache } from './plan-cache.js';
import { runRegionInbox } from './region-inbox.js';
import { createReplyIntake } from './reply-intake.js';
import { defaultDecisionEnvironment, type DecisionEnvironment } from './run-decision.js';
import { ShardRegistry, type ShardListener } from './shard-registry.js';
import { WaitingCommandReleaser } from './waiting-commands.js';

export type { ControlPlaneOptions } from './control-plane-options.js';
export type { ControlPlaneActions } from './control-plane-actions.js';

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

export interface ControlPlane extends ControlPlaneActions {
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
  /**
   * The compensations the execution would run if it failed now, in order, with their
   * inputs; changes nothing. Undefined when there is no such execution.
   */
  compensationPlan(executionId: string): Promise<CompensationPlanView | undefined>;
  /** The live shards (worker processes) as this control plane sees them. */
  shards(): LiveShard[];
  /** Called when a shard joins, leaves, or changes health or capabilities; returns an unsubscribe. */
  onShardsChanged(listener: ShardListener): () => void;
  /**
   * The same actions, each writing `audit` in the transaction of the change it makes, so
   * the audit row and the change commit together (the API's mutations use these).
   */
  audited(audit: AuditHook): AuditedActions;
}

/** What the control plane does that changes state (and so is audited when the API asks). */
export type AuditedActions = ControlPlaneActions;

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
  const { config, log } = compileControlPlaneOptions(options);
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
  let jobs: JobRunner | undefined;
  let ingest: DeadLetterIngest | undefined;
  let watchdog: ConnectorWatchdog | undefined;
  let inbox: OutboxConsumer | undefined;

  const producer: RecordProducer = createRecordProducer(kafka);
  const intake = createReplyIntake({ db, environment, observer, metrics, producer, log, config });

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

  const actionDeps: ActionDeps = { db, environment, observer, registry, region: config.region };

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
    jobs = await startJobRunner({ db, environment, observer, metrics, connection, config, log });
    consumer = await runJsonConsumer({
      kafka,
      groupId: config.groupId,
      topics: [config.replyTopic],
      fromBeginning: true,
      partitionsConsumedConcurrently: config.partitionsConsumedConcurrently,
      onUndecodable: intake.deadLetter,
      handle: intake.handleOne,
      ...intake.batching,
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
      await jobs?.stop();
      await producer.disconnect();
      await admin.close();
      await probeServer?.close();
      await db.destroy();
    },
    ...controlPlaneActions(actionDeps),
    audited: (audit) => controlPlaneActions(actionDeps, audit),
    compensationPlan: (id) => compensationPlanOf(db, plans, id),
    shards: () => registry.live(),
    onShardsChanged: (listener) => registry.onChange(listener),
  };
  internals.set(controlPlane, controlPlane);
  return controlPlane;
}
