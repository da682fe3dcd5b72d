import type { Kafka } from './kafka-client.js';

export interface EnsureTopicsOptions {
  /** Partitions of each topic created. @default 6 (the connector's topic.creation.default.partitions) */
  readonly partitions?: number;
  /** @default 1 (the local stack has one broker) */
  readonly replicationFactor?: number;
}

/**
 * Creates the topics that do not exist yet and waits for their leaders. Safe to call
 * again and from several processes at once: existing topics are left as they are.
 */
export async function ensureTopics(
  kafka: Kafka,
  topics: readonly string[],
  options: EnsureTopicsOptions = {},
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length === 0) return;
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({
          topic,
          numPartitions: options.partitions ?? 6,
          replicationFactor: options.replicationFactor ?? 1,
        })),
      });
    } catch (error) {
      // Another process created one of them between listTopics and createTopics.
      if ((error as { type?: string }).type !== 'TOPIC_ALREADY_EXISTS') throw error;
    }
  } finally {
    await admin.disconnect();
  }
}
