import { createKafka } from '../kafka/kafka-client.js';
import { createRecordProducer } from '../kafka/producer.js';
import { ensureTopics } from '../kafka/topics.js';
import { logger as rootLogger } from '../logger.js';
import { commandTopic, deadLetterTopic } from '../protocol/messages.js';
import { ConcurrencyLimit } from './concurrency-limit.js';
import { WorkerStoppingError } from './errors.js';
import { joinGroup, type GroupMember } from './group-member.js';
import { resolveWorkerOptions, type WorkerOptions } from './options.js';
import { createCommandProcessor } from './process-command.js';
import { stopOnSignals } from './signals.js';

export type { WorkerOptions } from './options.js';

export interface Worker {
  readonly workerId: string;
  /** The consumer group of each capability. */
  readonly groupIds: ReadonlyMap<string, string>;
  /** The consumer group, when all of this worker's capabilities share one; else undefined. */
  readonly groupId: string | undefined;
  /** Commands being processed now. */
  readonly running: number;
  /** Most commands processed at once since the start (never above `concurrency`). */
  readonly peakRunning: number;
  /**
   * Creates the command topics and their DLTs when missing, joins the consumer groups
   * and resolves once partitions are assigned. Calling it again returns the same promise.
   */
  start(): Promise<void>;
  /**
   * Stops taking commands, lets running handlers finish (up to `drainTimeoutMs`, then
   * aborts their signal and waits a little more), commits what is done, and leaves the
   * groups. Commands not settled by then are delivered again to another instance.
   * Calling it again returns the same promise.
   */
  stop(): Promise<void>;
}

/** After the drain timeout aborts the handlers' signals, how long they get to wind down. */
const ABORT_GRACE_MS = 5000;

/** Resolves true when `promise` settles first, false when `ms` pass first. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolvePromise) => {
    timer = setTimeout(() => resolvePromise(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A worker pulling step commands for its capabilities from Kafka and replying to each
 * command's reply topic. Options are checked here, once; a bad one throws
 * WorkerConfigError naming it.
 *
 * Delivery is at least once: a command's offset is committed only after its outcome
 * reply (or its dead letter) has been acknowledged by Kafka, so a crash before that
 * delivers it again — handlers key their side effects by `ctx.idempotencyKey`
 * (`withExactlyOnce`).
 */
export function createWorker(options: WorkerOptions): Worker {
  const config = resolveWorkerOptions(options);
  const log = (config.logger ?? rootLogger).child({ component: 'worker', workerId: config.workerId });
  const kafka =
    config.kafka ?? createKafka({ brokers: config.brokers, clientId: `sous-worker-${config.workerId}`, logger: log });
  const producer = createRecordProducer(kafka);
  const limit = new ConcurrencyLimit(config.concurrency);
  const controllers = new Set<AbortController>();
  const tasks = new Set<Promise<void>>();
  const members: GroupMember[] = [];
  const topicsByGroup = new Map<string, string[]>();
  for (const [capability, group] of config.groups) {
    topicsByGroup.set(group, [...(topicsByGroup.get(group) ?? []), commandTopic(capability)]);
  }
  const groupIds = new Set(config.groups.values());
  let accepting = false;
  let closed = false;
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  let undoSignals: (() => void) | undefined;

  const processRecord = createCommandProcessor({
    config,
    logger: log,
    producer,
    isClosed: () => closed,
    track: (controller) => {
      controllers.add(controller);
      return () => controllers.delete(controller);
    },
  });

  async function start(): Promise<void> {
    const topics = [...config.capabilities.keys()].map(commandTopic);
    await ensureTopics(kafka, topics);
    await ensureTopics(kafka, topics.map(deadLetterTopic), { partitions: 1 });
    if (stopping !== undefined) return;
    accepting = true;
    try {
      for (const [groupId, groupTopics] of topicsByGroup) {
        members.push(
          await joinGroup({
            kafka,
            groupId,
            topics: groupTopics,
            sessionTimeoutMs: config.sessionTimeoutMs,
            logger: log,
            limit,
            accepting: () => accepting,
            process: processRecord,
            onTask: (task) => {
              tasks.add(task);
              void task.finally(() => tasks.delete(task));
            },
          }),
        );
      }
      await Promise.all(members.map((m) => m.ready));
    } catch (error) {
      accepting = false;
      await Promise.allSettled(members.map((m) => m.stop()));
      members.length = 0;
      await producer.disconnect();
      throw error;
    }
    if (config.handleSignals) undoSignals = stopOnSignals(() => worker.stop());
    log.info(
      { capabilities: [...config.capabilities.keys()], groups: [...groupIds], concurrency: config.concurrency },
      'worker started',
    );
  }

  async function stop(): Promise<void> {
    await starting?.catch(() => undefined);
    undoSignals?.();
    accepting = false;
    for (const member of members) member.pause();
    if (!(await within(Promise.allSettled([...tasks]), config.drainTimeoutMs))) {
      log.warn({ running: controllers.size }, 'drain timeout: aborting running handlers');
      for (const controller of controllers) {
        controller.abort(new WorkerStoppingError(`worker ${config.workerId} is stopping`));
      }
      if (!(await within(Promise.allSettled([...tasks]), ABORT_GRACE_MS))) {
        log.warn({ running: tasks.size }, 'handlers still running; their commands go to another instance');
      }
    }
    closed = true;
    await Promise.allSettled(members.map((m) => m.flush()));
    await Promise.allSettled(members.map((m) => m.stop()));
    await producer.disconnect();
    log.info('worker stopped');
  }

  const worker: Worker = {
    workerId: config.workerId,
    groupIds: config.groups,
    groupId: groupIds.size === 1 ? [...groupIds][0] : undefined,
    get running() {
      return limit.active;
    },
    get peakRunning() {
      return limit.peak;
    },
    start() {
      starting ??= start();
      return starting;
    },
    stop() {
      stopping ??= stop();
      return stopping;
    },
  };
  return worker;
}
