import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import type { Kafka } from './kafka-client.js';

export interface EnsureTopicsOptions {
  /** Partitions of each topic created. @default 6 (the connector's topic.creation.default.partitions) */
  readonly partitions?: number;
  /** @default 1 (the local stack has one broker) */
  readonly replicationFactor?: number;
  /** Topic settings of topics created here (e.g. cleanup.policy). @default none */
  readonly configEntries?: readonly { readonly name: string; readonly value: string }[];
  /** How long to wait for new topics to have leaders. @default 30000 */
  readonly timeoutMs?: number;
}

/**
 * Creates the topics that do not exist yet and waits until every one has a leader for
 * each partition. Safe to call again and from several processes at once: existing
 * topics are left as they are.
 */
export async function ensureTopics(
  kafka: Kafka,
  topics: readonly string[],
  options: EnsureTopicsOptions = {},
): Promise<void> {
  if (topics.length === 0) return;
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      try {
        await admin.createTopics({
          waitForLeaders: false,
          topics: missing.map((topic) => ({
            topic,
            numPartitions: options.partitions ?? 6,
            replicationFactor: options.replicationFactor ?? 1,
            ...(options.configEntries === undefined ? {} : { configEntries: [...options.configEntries] }),
          })),
        });
      } catch (error) {
        // Another process created one of them between listTopics and createTopics.
        if ((error as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS') throw error;
      }
    }
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    const wanted = new Set(topics);
    for (;;) {
      // Metadata of every topic, not of the wanted ones by name: asking a broker by name
      // for a topic whose creation has not reached its metadata cache yet is an error
      // response (UNKNOWN_TOPIC_OR_PARTITION) that kafkajs logs at error level on each
      // retry, although nothing is wrong; in the full listing such a topic is just absent.
      const { topics: found } = await admin.fetchTopicMetadata();
      const ready = found.filter(
        (t) => wanted.has(t.name) && t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0),
      );
      if (ready.length === wanted.size) return;
      if (Date.now() > deadline)
        throw new Error(`topics ${topics.join(', ')} have no leaders after ${options.timeoutMs ?? 30_000} ms`);
      await sleep(100);
    }
  } finally {
    await admin.disconnect();
  }
}

/** Errors of a partition whose leader is still being settled: a topic created a moment ago. */
const LEADER_SETTLING = new Set(['NOT_LEADER_FOR_PARTITION', 'LEADER_NOT_AVAILABLE']);

/**
 * Each partition's end offset. A topic just created can have a leader in the metadata
 * before that broker answers as its leader (NOT_LEADER_FOR_PARTITION), and kafkajs's
 * admin gives that error back at once: asked again, with a growing pause, for up to
 * `timeoutMs`.
 */
export async function topicEnds(
  admin: Pick<Admin, 'fetchTopicOffsets'>,
  topic: string,
  timeoutMs = 30_000,
): Promise<Map<number, bigint>> {
  const deadline = Date.now() + timeoutMs;
  for (let pauseMs = 50; ; pauseMs = Math.min(pauseMs * 2, 1_000)) {
    try {
      const offsets = await admin.fetchTopicOffsets(topic);
      return new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
    } catch (error) {
      const type = (error as { type?: unknown }).type;
      if (typeof type !== 'string' || !LEADER_SETTLING.has(type) || Date.now() + pauseMs > deadline) throw error;
      await sleep(pauseMs);
    }
  }
}
