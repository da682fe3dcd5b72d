import type { Consumer, ConsumerConfig, ConsumerRunConfig, ConsumerSubscribeTopics } from 'kafkajs';
import { logger as rootLogger, type Logger } from '../logger.js';
import { CheckTimeoutError } from '../observability/errors.js';
import { withTimeout } from '../observability/with-timeout.js';
import type { Kafka } from './kafka-client.js';

export interface SupervisedConsumer {
  /** Resolves once the group has first been joined. */
  readonly ready: Promise<void>;
  /**
   * Whether the member is in the group now: true from a join until a rebalance, crash or
   * stop (readiness reports it; a consumer between a crash and its restart is not joined).
   */
  joined(): boolean;
  /** Leaves the group (waiting at most 10 s for the broker to answer); no restart follows. */
  stop(): Promise<void>;
  /**
   * Commits these positions (the next offset to read, per partition) for the group.
   * Rejects when the consumer is not running or the group is rebalancing.
   */
  commitOffsets(offsets: readonly { topic: string; partition: number; offset: string }[]): Promise<void>;
  /** Stops fetching every subscribed topic; the member stays in the group and keeps heartbeating. */
  pause(): void;
}

export interface SupervisedConsumerHooks {
  /** The member joined the group (first time or after a rebalance) and owns these partitions. */
  readonly onGroupJoin?: (assignment: Readonly<Record<string, readonly number[]>>) => void;
}

/** How long a stop waits for the member to leave its group (a broker outage holds it far longer). */
const STOP_WAIT_MS = 10_000;

/**
 * A kafkajs consumer that comes back after any crash. kafkajs restarts a crashed
 * consumer only when the cause is retriable; after a broker outage the cause can be
 * anything (coordinator moved, connection refused while rejoining), and a consumer
 * that stays down leaves a process alive that does nothing. Here every crash the
 * consumer does not restart itself is followed by a new consumer, with back-off, until
 * `stop()`. Redelivery is safe: offsets are committed only after a record is handled.
 */
export async function runSupervisedConsumer(
  kafka: Kafka,
  config: ConsumerConfig,
  topics: ConsumerSubscribeTopics,
  run: ConsumerRunConfig,
  logger: Logger = rootLogger,
  hooks: SupervisedConsumerHooks = {},
): Promise<SupervisedConsumer> {
  const log = logger.child({ component: 'consumer', groupId: config.groupId });
  let current: Consumer | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let backoffMs = 1000;
  let paused = false;
  let joined = false;
  const pauseAll = (consumer: Consumer) => consumer.pause(topicsOf(topics).map((topic) => ({ topic })));
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });

  // Read through a function: stop() changes it while start() awaits.
  const isStopped = () => stopped;
  const start = async (): Promise<void> => {
    const consumer = kafka.consumer({
      ...config,
      retry: {
        ...config.retry,
        // kafkajs restarts a consumer that crashed on a retriable error on a timer of its own,
        // also after stop(): while the broker is down each restart crashes again, so a stopped
        // consumer would dial the broker for ever and keep the process alive.
        restartOnFailure: async (error) => {
          if (isStopped()) return false;
          return config.retry?.restartOnFailure === undefined ? true : await config.retry.restartOnFailure(error);
        },
      },
    });
    current = consumer;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      // The same for a restart kafkajs began before stop() and that joined after it.
      if (isStopped()) {
        void consumer.disconnect().catch(() => undefined);
        return;
      }
      joined = true;
      backoffMs = 1000;
      hooks.onGroupJoin?.(event.payload.memberAssignment);
      markReady();
    });
    const left = () => {
      if (current === consumer) joined = false;
    };
    consumer.on(consumer.events.REBALANCING, left);
    consumer.on(consumer.events.STOP, left);
    consumer.on(consumer.events.DISCONNECT, left);
    consumer.on(consumer.events.CONNECT, () => {
      // kafkajs restarts a consumer that crashed on a retriable error (a broker outage) on
      // a timer of its own, even when the crash came from our disconnect: a consumer that
      // connects after stop() must not live on (its sockets keep the process alive).
      if (isStopped()) void consumer.disconnect().catch(() => undefined);
    });
    consumer.on(consumer.events.CRASH, (event) => {
      left();
      if (event.payload.restart || stopped) return;
      log.error({ reason: event.payload.error.message }, 'consumer crashed; starting a new one');
      restartLater();
    });
    await consumer.connect();
    // stop() may come while this consumer connects (a restart after a crash): it must not
    // outlive it, or its connections keep the process alive.
    if (isStopped()) {
      await consumer.disconnect();
      return;
    }
    await consumer.subscribe(topics);
    await consumer.run(run);
    if (isStopped()) {
      await consumer.disconnect();
      return;
    }
    // A consumer started again after a crash while paused stays paused.
    if (paused) pauseAll(consumer);
  };

  const restartLater = () => {
    if (stopped || timer !== undefined) return;
    const delay = backoffMs;
    backoffMs = Math.min(backoffMs * 2, 30_000);
    timer = setTimeout(() => {
      timer = undefined;
      void (async () => {
        await current?.disconnect().catch(() => undefined);
        if (stopped) return;
        try {
          await start();
        } catch (error) {
          log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'consumer restart failed');
          restartLater();
        }
      })();
    }, delay);
  };

  await start();
  return {
    ready,
    joined: () => joined && !stopped,
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      const leaving = current?.disconnect();
      if (leaving === undefined) return;
      // While the broker is down kafkajs keeps the member's leave (and a restart it began)
      // retrying for a minute or more: the stop does not wait for that. What it began
      // ends with its retries (restartOnFailure above starts nothing new), and the group
      // drops the member after its session timeout.
      try {
        await withTimeout(leaving, STOP_WAIT_MS, 'leaving the group');
      } catch (error) {
        if (!(error instanceof CheckTimeoutError)) throw error;
        log.warn({ waitedMs: STOP_WAIT_MS }, 'consumer stopped without leaving its group (the broker did not answer)');
      }
    },
    async commitOffsets(offsets) {
      if (current === undefined) throw new Error('the consumer is not running');
      await current.commitOffsets(offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset })));
    },
    pause() {
      paused = true;
      try {
        if (current !== undefined) pauseAll(current);
      } catch {
        // Not running yet (kafkajs pauses only a running consumer): start() pauses it.
      }
    },
  };
}

/** Topic names of a subscription (sous subscribes by name, never by pattern). */
function topicsOf(topics: ConsumerSubscribeTopics): string[] {
  return topics.topics.filter((t): t is string => typeof t === 'string');
}
