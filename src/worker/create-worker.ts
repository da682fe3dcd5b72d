import { randomBytes } from 'node:crypto';
import type { Span } from '@opentelemetry/api';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KafkaMessage } from 'kafkajs';
import { MalformedRecordError } from '../errors.js';
import { createCoalescingProducer } from '../kafka/coalescing-producer.js';
import { runConcurrentConsumer, type ConcurrentConsumer } from '../kafka/concurrent-consumer.js';
import { publishDeadLetter } from '../kafka/dead-letter.js';
import { kafkaConnectionFailure } from '../kafka/connection-errors.js';
import { createKafka, type KafkaClientOptions } from '../kafka/kafka-client.js';
import { decodeOutboxRecord } from '../kafka/outbox-record.js';
import { createRecordProducer, type RecordProducer } from '../kafka/producer.js';
import { ensureTopics } from '../kafka/topics.js';
import { logger as rootLogger } from '../logger.js';
import { deadLetterTopic, type StepCommand } from '../protocol/messages.js';
import {
  capabilityOfTopic,
  SHARD_CONTROL_TOPIC,
  SHARD_REGISTRY_TOPIC,
  shardCommandTopics,
  shardControlSchema,
  stepCancelSchema,
  type ShardHealth,
} from '../protocol/shards.js';
import { ensureCompactedTopic } from '../kafka/compacted-topic-reader.js';
import { runOutboxConsumer, type OutboxConsumer } from '../kafka/outbox-consumer.js';
import { ShardPresence } from './shard-presence.js';
import { StepCancelledError } from './errors.js';
import { AdminHandle, describeCluster } from '../kafka/consumer-lag.js';
import { CheckFailedError } from '../observability/errors.js';
import { serveProbes, type ProbeServer } from '../observability/probe-server.js';
import { checkReadiness, type Readiness } from '../observability/readiness.js';
import { WorkerMetrics } from '../observability/worker-metrics.js';
import { workerConfig, type WorkerOptions } from './options.js';
import type { ReplyBody } from './reply.js';
import { sendReply } from './traced-reply.js';
import { ATTR } from '../observability/span-attributes.js';
import { contextFromHeaders } from '../observability/trace-context.js';
import { consumerSpan, endSpan } from '../observability/tracing.js';
import { Poison, runCommand, type RunEnvironment } from './run-command.js';

export type { WorkerOptions } from './options.js';

export interface Worker {
  /** Also its shard id in the registry. */
  readonly workerId: string;
  readonly groupId: string;
  /** Where /metrics, /healthz and /readyz are served once started; undefined without `metricsPort`. */
  readonly probesUrl: string | undefined;
  /** Whether the worker can take commands: Kafka answers and its consumer is in its group. */
  readiness(): Promise<Readiness>;
  /** Joins the group and starts running commands. */
  start(): Promise<void>;
  /**
   * Drains, says goodbye in the registry, and stops: no new commands, running handlers
   * finish (up to the drain timeout), the group gets the partitions back. On SIGTERM too.
   */
  stop(): Promise<void>;
  /**
   * Takes no new commands and finishes the running ones, staying in the registry as
   * `draining` (heartbeating, with nothing in flight once done): its queued commands go
   * to the group's other shards. What an operator's `drainShard` does. Resolves when
   * nothing is in flight any more.
   */
  drain(reason?: string): Promise<void>;
  /** Takes commands again after a drain (what an operator's `resumeShard` does). */
  resume(): Promise<void>;
  /**
   * Announces the shard degraded (its group gives its partitions to healthy shards while
   * there are any) or healthy again. The `healthCheck` option does this before each heartbeat.
   */
  setHealth(health: 'healthy' | 'degraded', reason?: string): Promise<void>;
  /** The health the shard announces now. */
  health(): ShardHealth;
}

/** Retries of a registry announcement (and of connecting for it): a second or two of trying while the broker is down. */
const PRESENCE_SEND_RETRIES = 2;

/**
 * A worker pulling step commands for its capabilities from Kafka. Options are checked
 * once here; a bad option throws WorkerConfigError naming it.
 *
 * Commands run concurrently (up to `concurrency`, one at a time per Kafka key) beside
 * the consumer's fetch loop, which keeps heartbeating however long a handler runs.
 * Replies share sends: one is in flight at a time, and those produced meanwhile go
 * together in the next. A command's offset is committed once its last reply is in
 * Kafka, and only past commands that are all done (see runConcurrentConsumer).
 */
export function createWorker(options: WorkerOptions): Worker {
  const config = workerConfig(options);
  const names = options.capabilities.map((c) => c.name);
  const workerId = config.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const groupId = config.groupId ?? `sous-worker.${[...names].sort().join('+')}`;
  const clientOptions: KafkaClientOptions = {
    brokers: options.brokers ?? [],
    clientId: workerId,
    ...(options.kafkaSecurity === undefined ? {} : { security: options.kafkaSecurity }),
  };
  const kafka = options.kafka ?? createKafka(clientOptions);
  const log = (options.logger ?? rootLogger).child({ component: 'worker', workerId });
  const region = config.region ?? null;
  const topics = options.capabilities.flatMap((c) => shardCommandTopics(c.name, c.version, region));
  const incarnation = randomBytes(8).toString('hex');
  const producer: RecordProducer = createCoalescingProducer(createRecordProducer(kafka));
  // The shard's announcements go on a client of their own that gives up soon: a heartbeat
  // lost in a broker outage is replaced by the next, and a stopping worker does not wait
  // minutes on its goodbye (the control planes drop a silent shard after its timeout).
  // A client passed in as `kafka` is used as it is.
  const presenceProducer = createRecordProducer(
    options.kafka ?? createKafka({ ...clientOptions, retries: PRESENCE_SEND_RETRIES }),
  );
  const inFlight = new Set<AbortController>();
  const metrics = new WorkerMetrics({ processMetrics: config.processMetrics, inFlight: () => inFlight.size });
  const admin = new AdminHandle(kafka);
  let probeServer: ProbeServer | undefined;
  const readiness = () =>
    checkReadiness(
      {
        kafka: async () => `${(await admin.with(describeCluster)).brokers} broker(s)`,
        consumer: async () => {
          if (consumer === undefined) {
            throw new CheckFailedError(
              presence.health === 'draining' ? 'the shard is draining' : 'the worker has not started',
            );
          }
          if (!consumer.joined()) throw new CheckFailedError(`the consumer is not in group ${groupId}`);
          return `in group ${groupId}`;
        },
      },
      config.checkTimeoutMs,
    );
  /** A final reply ends a command: counted, with its run time from the start it carries. */
  const observeReply = (command: StepCommand, body: ReplyBody) => {
    if (body.kind !== 'step.completed' && body.kind !== 'step.failed') return;
    const labels = { capability: command.capability, outcome: body.kind === 'step.completed' ? 'completed' : 'failed' };
    metrics.finished.inc(labels);
    if (body.startedAt !== undefined) {
      metrics.duration.observe(labels, Math.max(0, (Date.now() - Date.parse(body.startedAt)) / 1000));
    }
  };
  const env: RunEnvironment = {
    capabilities: new Map(options.capabilities.map((c) => [c.name, c])),
    payloadStore: options.payloadStore,
    region,
    send: async (command, body, parent) => {
      await sendReply(producer, parent, command, body, workerId);
      observeReply(command, body);
    },
    startedReplyAfterMs: config.startedReplyAfterMs,
    inFlight,
    running: new Map(),
    log,
  };
  let consumer: ConcurrentConsumer | undefined;
  let control: OutboxConsumer | undefined;
  let stopping: Promise<void> | undefined;
  const presence = new ShardPresence(
    {
      shardId: workerId,
      service: config.service ?? groupId.replace(/^sous-worker\./, ''),
      instance: `${hostname()}-${process.pid}`,
      incarnation,
      region,
      capabilities: options.capabilities.map((c) => ({ name: c.name, version: c.version })),
      concurrency: config.concurrency,
    },
    presenceProducer,
    config.heartbeatIntervalMs,
    () => inFlight.size,
    log,
    async () => {
      if (options.healthCheck === undefined || presence.health === 'draining') return;
      const health = await options.healthCheck();
      await changeHealth(health);
    },
  );
  /** One membership change at a time: joining, leaving and rejoining never overlap. */
  let membership: Promise<void> = Promise.resolve();
  const serially = (step: () => Promise<void>): Promise<void> => {
    const next = membership.then(step);
    membership = next.catch(() => undefined);
    return next;
  };
  const join = async () => {
    if (consumer !== undefined) return;
    consumer = await runConcurrentConsumer({
      kafka,
      groupId,
      topics,
      fromBeginning: true,
      sessionTimeoutMs: config.sessionTimeoutMs,
      concurrency: config.concurrency,
      handle,
      logger: log,
      // Read at each join: a degraded shard gets partitions only of topics no healthy shard reads.
      memberHealth: () => (presence.health === 'degraded' ? 'degraded' : 'healthy'),
    });
  };
  const leave = async () => {
    const running = consumer;
    if (running === undefined) return;
    const drained = running.stop();
    const timeout = sleep(config.drainTimeoutMs).then(() => 'timeout' as const);
    if ((await Promise.race([drained.then(() => 'drained' as const), timeout])) === 'timeout') {
      log.warn({ running: env.inFlight.size }, 'drain timeout: aborting running handlers');
      for (const controller of env.inFlight) controller.abort(new Error('worker stopping'));
      await drained;
    }
    consumer = undefined;
  };
  /** Healthy ↔ degraded: announced, then the member rejoins so the group's assigner weighs it anew. */
  const changeHealth = (health: 'healthy' | 'degraded', reason?: string) =>
    serially(async () => {
      if (presence.health === 'draining' || health === presence.health) return;
      await tell(presence.setHealth(health, reason));
      log.info({ health, reason }, 'shard health changed');
      if (consumer !== undefined) {
        await leave();
        await join();
      }
    });
  /** A registry write that fails (a broker outage) must not stop a drain: the heartbeat says it later. */
  const tell = (what: Promise<unknown>) =>
    what.catch((error: unknown) => {
      log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'registry not told');
    });
  const drain = (reason?: string) =>
    serially(async () => {
      await tell(presence.setHealth('draining', reason));
      await leave();
      // Announced again with nothing in flight: the operator sees the drain is complete.
      await tell(presence.announce());
      log.info({ reason }, 'shard drained');
    });
  const resume = () =>
    serially(async () => {
      if (presence.health !== 'draining' || stopping !== undefined) return;
      await tell(presence.setHealth('healthy'));
      await join();
      log.info('shard resumed');
    });
  const onSignal = () => void worker.stop();

  async function deadLetter(
    topic: string,
    partition: number,
    message: KafkaMessage,
    error: Error & { code?: string },
    attempts: number,
    span: Span,
  ) {
    span.setAttribute('sous.dead_lettered', true);
    endSpan(span, error);
    log.error(
      { topic, partition, offset: message.offset, code: error.code, reason: error.message },
      'command dead-lettered',
    );
    metrics.deadLettered.inc({ capability: capabilityOf(topic), error_code: error.code ?? 'UNKNOWN' });
    await publishDeadLetter(producer, { topic, partition, message, error, consumerGroup: groupId, attempts });
  }

  /**
   * One record: decoded, run, tried again in process on a passing failure, dead-lettered
   * when hopeless; in one CONSUMER span (`process <command topic>`), the handler's, child
   * of the context the command carries (its PRODUCER span in the control plane).
   */
  async function handle(message: KafkaMessage, where: { topic: string; partition: number }): Promise<void> {
    const { topic, partition } = where;
    metrics.received.inc({ capability: capabilityOf(topic) });
    const span = consumerSpan(contextFromHeaders(message.headers), {
      topic,
      partition,
      offset: message.offset,
      key: message.key?.toString('utf8'),
      consumerGroup: groupId,
      attributes: { [ATTR.workerId]: workerId },
    });
    let record;
    try {
      record = decodeOutboxRecord(topic, partition, message);
    } catch (error) {
      if (!(error instanceof MalformedRecordError)) {
        endSpan(span, error);
        throw error;
      }
      return deadLetter(topic, partition, message, error, 1, span);
    }
    span.setAttribute(ATTR.messagingMessageId, record.id);
    for (let attempt = 1; ; attempt++) {
      try {
        await runCommand(env, record, span);
        endSpan(span);
        return;
      } catch (error) {
        if (error instanceof Poison) return deadLetter(topic, partition, message, error.reason, attempt, span);
        if (attempt >= config.maxDeliveryAttempts) {
          const reason = error instanceof Error ? error : new Error(String(error));
          return deadLetter(topic, partition, message, reason, attempt, span);
        }
        span.addEvent('retry', { 'sous.delivery.attempt': attempt });
        log.warn(
          { reason: error instanceof Error ? error.message : String(error), attempt },
          'command processing failed; trying again',
        );
        await sleep(Math.min(5000, 200 * 2 ** (attempt - 1)));
      }
    }
  }

  const worker: Worker = {
    workerId,
    groupId,
    get probesUrl() {
      return probeServer?.url;
    },
    readiness,
    async start() {
      if (config.metricsPort !== undefined) {
        probeServer = await serveProbes({
          host: config.metricsHost,
          port: config.metricsPort,
          probes: { registry: metrics.registry, readiness },
          portSetting: 'the worker option metricsPort',
          log,
        });
      }
      try {
        await ensureTopics(kafka, topics);
      } catch (error) {
        // The first connection: a refused login or certificate is one coded error naming the setting.
        throw kafkaConnectionFailure(error) ?? error;
      }
      await ensureTopics(kafka, topics.map(deadLetterTopic), { partitions: 1 });
      await ensureCompactedTopic(kafka, SHARD_REGISTRY_TOPIC);
      await ensureTopics(kafka, [SHARD_CONTROL_TOPIC], { partitions: 1 });
      // Announced before joining: a control plane holding steps for this capability sends
      // them as soon as it sees the shard, and the consumer then finds them in the topic.
      await presence.start();
      await serially(join);
      control = await runOutboxConsumer({
        kafka,
        // Its own group: every shard reads every request and acts on those naming it.
        groupId: `sous-shard-control.${workerId}.${incarnation}`,
        topics: [SHARD_CONTROL_TOPIC],
        fromBeginning: true,
        handle: async (record) => {
          const cancel = stepCancelSchema.safeParse(record.payload);
          if (cancel.success) {
            const controller = env.running.get(cancel.data.stepExecutionId);
            if (controller !== undefined) {
              log.info({ stepExecutionId: cancel.data.stepExecutionId, reason: cancel.data.reason }, 'step cancelled');
              controller.abort(new StepCancelledError(`step cancelled: ${cancel.data.reason}`));
            }
            return;
          }
          const parsed = shardControlSchema.safeParse(record.payload);
          if (!parsed.success) {
            log.error({ id: record.id, reason: parsed.error.message }, 'shard control request ignored: malformed');
            return;
          }
          const request = parsed.data;
          if (request.shardId !== workerId || request.incarnation !== incarnation) return;
          log.info({ kind: request.kind, requestedBy: request.requestedBy }, 'shard control request');
          if (request.kind === 'shard.drain') await drain(`drained by ${request.requestedBy ?? 'an operator'}`);
          else await resume();
        },
        onMalformed: (error, message) => {
          log.error({ offset: message.offset, reason: error.message }, 'shard control record ignored: malformed');
          return Promise.resolve();
        },
      });
      if (config.handleSignals) {
        process.once('SIGTERM', onSignal);
        process.once('SIGINT', onSignal);
      }
      log.info({ capabilities: names, groupId, concurrency: config.concurrency }, 'worker started');
    },
    stop() {
      stopping ??= (async () => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        await drain('stopping');
        await control?.stop();
        await presence.stop().catch((error: unknown) => {
          // Without a goodbye the control planes drop the shard after their timeout.
          log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'goodbye not sent');
        });
        await producer.disconnect();
        await presenceProducer.disconnect();
        await admin.close();
        await probeServer?.close();
        log.info('worker stopped');
      })();
      return stopping;
    },
    drain,
    resume,
    setHealth: changeHealth,
    health: () => presence.health,
  };
  return worker;
}

/** The capability of a command topic: a bounded label. */
function capabilityOf(topic: string): string {
  return capabilityOfTopic(topic) ?? topic;
}
