import type { Consumer, KafkaMessage } from 'kafkajs';
import type { Kafka } from './kafka-client.js';

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export interface OffsetToCommit extends TopicPartition {
  /** The next offset the group should read: one past the last record that is done. */
  readonly offset: string;
}

export interface ManualCommitConsumerOptions {
  readonly kafka: Kafka;
  readonly groupId: string;
  readonly topics: readonly string[];
  /** Start a new group at the earliest offset rather than the latest. @default true */
  readonly fromBeginning?: boolean;
  /** A crashed member's partitions move to the others this much later. @default 10000 */
  readonly sessionTimeoutMs?: number;
  /**
   * Called per record, one at a time, in partition order. Returning does not commit it:
   * the caller commits with `commit()` once the record is done, which may be long after
   * this returns. While this waits (for a free slot, say) it should call `heartbeat`,
   * which keeps the member in its group and throws when the group rebalances; a throw
   * leaves the record uncommitted, and it is delivered again after the rejoin.
   */
  readonly onRecord: (message: KafkaMessage, where: TopicPartition, heartbeat: () => Promise<void>) => Promise<void>;
  /** Called after each join or rejoin with the partitions this member now owns. */
  readonly onAssignment?: (assigned: readonly TopicPartition[]) => void;
  /** Called when the kafkajs consumer crashes; `restarting` says whether it will come back by itself. */
  readonly onCrash?: (error: Error, restarting: boolean) => void;
}

export interface ManualCommitConsumer {
  /** Resolves once the group has been joined and partitions assigned; rejects if the consumer crashes for good first. */
  readonly ready: Promise<void>;
  /** Commits offsets for the group. Throws when the group is rebalancing or the broker is unreachable. */
  commit(offsets: readonly OffsetToCommit[]): Promise<void>;
  /** Stops fetching records; the member stays in its group (and heartbeats) until `stop()`. */
  pause(): void;
  /** Leaves the group. Offsets not committed by then are delivered again to the next owner. */
  stop(): Promise<void>;
}

/**
 * A consumer group member (read_committed) whose offsets move only when the caller
 * commits them: a record is done when its processing says so, not when kafkajs has
 * handed it over. The fetch loop never waits for processing, so one slow record does not
 * hold back the other partitions, and heartbeats keep flowing while handlers run.
 */
export async function runManualCommitConsumer(options: ManualCommitConsumerOptions): Promise<ManualCommitConsumer> {
  const sessionTimeout = options.sessionTimeoutMs ?? 10_000;
  const consumer: Consumer = options.kafka.consumer({
    groupId: options.groupId,
    // Only records of committed Connect transactions (exactly-once source delivery).
    readUncommitted: false,
    maxWaitTimeInMs: 100,
    sessionTimeout,
    heartbeatInterval: Math.max(500, Math.floor(sessionTimeout / 4)),
  });
  let markReady: () => void = () => undefined;
  let markFailed: (error: Error) => void = () => undefined;
  const ready = new Promise<void>((resolvePromise, rejectPromise) => {
    markReady = resolvePromise;
    markFailed = rejectPromise;
  });
  // The rejection is also observed by whoever awaits `ready`; this keeps an unobserved one quiet.
  ready.catch(() => undefined);
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const assigned = Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
      partitions.map((partition) => ({ topic, partition })),
    );
    options.onAssignment?.(assigned);
    markReady();
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    options.onCrash?.(payload.error, payload.restart);
    if (!payload.restart) markFailed(payload.error);
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [...options.topics], fromBeginning: options.fromBeginning ?? true });
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 1,
      eachMessage: async (payload) => {
        const { topic, partition, message } = payload;
        await options.onRecord(message, { topic, partition }, () => payload.heartbeat());
      },
    });
  } catch (error) {
    await consumer.disconnect();
    throw error;
  }
  return {
    ready,
    async commit(offsets) {
      if (offsets.length === 0) return;
      await consumer.commitOffsets(offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset })));
    },
    pause() {
      consumer.pause(options.topics.map((topic) => ({ topic })));
    },
    async stop() {
      await consumer.disconnect();
    },
  };
}
