import { randomBytes } from 'node:crypto';
import { logger as rootLogger, type Logger } from '../logger.js';
import type { Kafka } from './kafka-client.js';
import { runSupervisedConsumer } from './supervised-consumer.js';
import { ensureTopics, topicEnds } from './topics.js';

/** One record of a keyed topic: a tombstone has a null value. */
export interface KeyedRecord {
  readonly key: string;
  readonly value: string | null;
  /** The record's Kafka timestamp (the producer's clock), ms. */
  readonly timestampMs: number;
}

export interface CompactedTopicReader {
  /** Resolves once every record that was in the topic when reading began has been handled. */
  readonly caughtUp: Promise<void>;
  stop(): Promise<void>;
}

export interface CompactedTopicReaderOptions {
  readonly kafka: Kafka;
  readonly topic: string;
  /** Prefix of the reader's own consumer group (a random suffix makes it unique per reader). */
  readonly groupPrefix: string;
  /** Called for each record, in order; a throw is logged and the record skipped (it is a view, not a command). */
  readonly handle: (record: KeyedRecord) => void;
  readonly logger?: Logger;
}

/**
 * Reads a compacted, single-partition topic from its beginning and then follows it: a
 * process's view of a table kept in Kafka (the shard registry). Each reader has a group
 * of its own and commits nothing, so every start reads the whole topic again, and
 * several processes each see every record. Creates the topic (compacted) when missing.
 */
export async function readCompactedTopic(options: CompactedTopicReaderOptions): Promise<CompactedTopicReader> {
  const { kafka, topic } = options;
  const log = (options.logger ?? rootLogger).child({ component: 'topic-reader', topic });
  await ensureCompactedTopic(kafka, topic);
  const admin = kafka.admin();
  await admin.connect();
  let ends: Map<number, bigint>;
  try {
    ends = await topicEnds(admin, topic);
  } finally {
    await admin.disconnect();
  }
  let markCaughtUp: () => void = () => undefined;
  const caughtUp = new Promise<void>((resolve) => {
    markCaughtUp = resolve;
  });
  // Partitions whose end (as of the start) is not reached yet; an empty one is reached at once.
  for (const [partition, end] of ends) if (end <= 0n) ends.delete(partition);
  if (ends.size === 0) markCaughtUp();
  const consumer = await runSupervisedConsumer(
    kafka,
    {
      groupId: `${options.groupPrefix}.${randomBytes(6).toString('hex')}`,
      maxWaitTimeInMs: 100,
      sessionTimeout: 10_000,
      heartbeatInterval: 2_500,
    },
    { topics: [topic], fromBeginning: true },
    {
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        try {
          options.handle({
            key: message.key?.toString('utf8') ?? '',
            value: message.value === null ? null : message.value.toString('utf8'),
            timestampMs: Number(message.timestamp),
          });
        } catch (error) {
          log.warn(
            { offset: message.offset, reason: error instanceof Error ? error.message : String(error) },
            'record skipped',
          );
        }
        const end = ends.get(partition);
        if (end !== undefined && BigInt(message.offset) + 1n >= end) {
          ends.delete(partition);
          if (ends.size === 0) markCaughtUp();
        }
        return Promise.resolve();
      },
    },
    log,
  );
  return { caughtUp, stop: () => consumer.stop() };
}

/** A compacted topic of one partition (one order for all keys), made when missing. */
export async function ensureCompactedTopic(kafka: Kafka, topic: string): Promise<void> {
  await ensureTopics(kafka, [topic], {
    partitions: 1,
    configEntries: [
      { name: 'cleanup.policy', value: 'compact' },
      // Heartbeats pile up: compact often so a reader starting later has little to read.
      { name: 'segment.ms', value: String(10 * 60_000) },
      { name: 'min.cleanable.dirty.ratio', value: '0.1' },
      // Tombstones (goodbyes) are kept a day, so a reader that was down sees them.
      { name: 'delete.retention.ms', value: String(24 * 3_600_000) },
    ],
  });
}
