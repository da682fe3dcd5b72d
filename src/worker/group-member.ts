import type { KafkaMessage } from 'kafkajs';
import type { Kafka } from '../kafka/kafka-client.js';
import {
  runManualCommitConsumer,
  type ManualCommitConsumer,
  type OffsetToCommit,
  type TopicPartition,
} from '../kafka/manual-commit-consumer.js';
import type { Logger } from '../logger.js';
import type { ConcurrencyLimit } from './concurrency-limit.js';
import { PartitionOffsets } from './partition-offsets.js';
import type { ProcessOutcome, RecordSource } from './process-command.js';

export interface GroupMemberOptions {
  readonly kafka: Kafka;
  readonly groupId: string;
  readonly topics: readonly string[];
  readonly sessionTimeoutMs: number;
  readonly logger: Logger;
  /** Shared by all of the worker's members: a record is taken only when a slot is free. */
  readonly limit: ConcurrencyLimit;
  /** False once the worker stops: records that arrive then are left for the next owner. */
  readonly accepting: () => boolean;
  readonly process: (message: KafkaMessage, source: RecordSource) => Promise<ProcessOutcome>;
  /** Hands each record's processing to the worker, which waits for them when it stops. */
  readonly onTask: (task: Promise<void>) => void;
}

export interface GroupMember {
  readonly ready: Promise<void>;
  /** Stops taking records. */
  pause(): void;
  /** Commits what is done now. */
  flush(): Promise<void>;
  /** Leaves the group. */
  stop(): Promise<void>;
}

/** How often a record waiting for a free slot heartbeats its group. */
const WAIT_SLICE_MS = 1000;
/** After a failed commit, try again this much later even if nothing else finishes. */
const COMMIT_RETRY_MS = 1000;

/**
 * One consumer group membership of a worker: takes records when a concurrency slot is
 * free, runs each in the background (a slow command never holds back the fetch loop
 * or the other partitions), and commits a partition's offset only up to the first record
 * not yet settled — replied, deferred or dead-lettered.
 */
export async function joinGroup(options: GroupMemberOptions): Promise<GroupMember> {
  const { groupId, limit, logger: log } = options;
  /** Per partition owned now. A revoked partition's tracker is dropped: its late finishes commit nothing. */
  const offsets = new Map<string, { readonly where: TopicPartition; readonly tracker: PartitionOffsets }>();
  /** Records being processed here, so that one delivered again after a rejoin is not run twice. */
  const inHand = new Map<string, Promise<ProcessOutcome>>();
  const partitionKey = (tp: TopicPartition) => `${tp.topic}:${tp.partition}`;
  /** Set once the consumer runs; records may finish (and commit) before `joinGroup` returns. */
  const joined: { consumer?: ManualCommitConsumer } = {};
  let committing: Promise<void> | undefined;
  let commitAgain = false;
  let retryTimer: NodeJS.Timeout | undefined;

  async function commitNow(): Promise<void> {
    const batch: (OffsetToCommit & { tracker: PartitionOffsets })[] = [];
    for (const { where, tracker } of offsets.values()) {
      const offset = tracker.takeCommit();
      if (offset !== undefined) batch.push({ ...where, offset, tracker });
    }
    const { consumer } = joined;
    if (batch.length === 0 || consumer === undefined) return;
    try {
      await consumer.commit(batch);
    } catch (error) {
      for (const b of batch) b.tracker.retryCommit();
      log.warn({ err: error, groupId }, 'offset commit failed; trying again');
      retryTimer ??= setTimeout(() => {
        retryTimer = undefined;
        scheduleCommit();
      }, COMMIT_RETRY_MS);
      retryTimer.unref();
    }
  }

  async function commitLoop(): Promise<void> {
    try {
      while (commitAgain) {
        commitAgain = false;
        await commitNow();
      }
    } finally {
      committing = undefined;
    }
  }

  /** Commits soon; commits never overlap, and one that is asked for during another runs after it. */
  function scheduleCommit(): void {
    commitAgain = true;
    committing ??= commitLoop();
  }

  async function onRecord(message: KafkaMessage, where: TopicPartition, heartbeat: () => Promise<void>) {
    if (!options.accepting()) return;
    // Back pressure: wait here, heartbeating, until a slot is free; kafkajs fetches nothing meanwhile.
    while (!limit.tryAcquire()) {
      await limit.nextRelease(WAIT_SLICE_MS);
      await heartbeat();
      if (!options.accepting()) return;
    }
    const key = partitionKey(where);
    let tracker = offsets.get(key)?.tracker;
    if (tracker === undefined) {
      tracker = new PartitionOffsets();
      offsets.set(key, { where: { topic: where.topic, partition: where.partition }, tracker });
    }
    const id = `${key}:${message.offset}`;
    if (tracker.arrive(message.offset) === 'seen') {
      limit.release();
      return;
    }
    const owner = tracker;
    const settle = (outcome: ProcessOutcome) => {
      if (outcome === 'done') {
        owner.finish(message.offset);
        scheduleCommit();
      }
    };
    const running = inHand.get(id);
    if (running !== undefined) {
      // Delivered again while it still runs here (the partition came back after a rebalance).
      limit.release();
      options.onTask(running.then(settle));
      return;
    }
    const task = (async (): Promise<ProcessOutcome> => {
      try {
        return await options.process(message, { ...where, groupId });
      } finally {
        limit.release();
        inHand.delete(id);
      }
    })();
    inHand.set(id, task);
    options.onTask(
      task.then(settle, (error: unknown) => {
        log.error({ err: error, groupId }, 'command processing failed unexpectedly; it will be delivered again');
      }),
    );
  }

  const member = await runManualCommitConsumer({
    kafka: options.kafka,
    groupId,
    topics: options.topics,
    fromBeginning: true,
    sessionTimeoutMs: options.sessionTimeoutMs,
    onRecord,
    onAssignment: (assigned) => {
      const owned = new Set(assigned.map(partitionKey));
      for (const key of offsets.keys()) if (!owned.has(key)) offsets.delete(key);
      log.debug({ groupId, assigned: [...owned] }, 'partitions assigned');
    },
    onCrash: (error, restarting) => {
      log.error({ err: error, groupId, restarting }, 'consumer crashed');
    },
  });
  joined.consumer = member;
  return {
    ready: member.ready,
    pause: () => member.pause(),
    async flush() {
      scheduleCommit();
      await committing;
    },
    async stop() {
      clearTimeout(retryTimer);
      await member.stop();
    },
  };
}
