import type { Admin } from 'kafkajs';
import type { Kafka } from './kafka-client.js';

const COMMAND_TOPIC = /^sous\.cmd\.(.+)$/;

/** Commands of one capability not yet consumed, as Kafka counts them. */
export interface CommandLag {
  readonly capability: string;
  /**
   * Records in `sous.cmd.<capability>` past the committed offset of the group consuming
   * it (the largest when several groups do; every record when none has committed yet).
   */
  readonly lag: number;
  /** Consumer groups holding committed offsets on the topic. */
  readonly groups: readonly string[];
}

/**
 * Per capability, how far its consumer groups trail its command topic. Which groups
 * consume a topic is read from their committed offsets, not from their members: a group
 * whose workers are all down still trails, and its backlog is exactly what to see.
 * One metadata read, one offsets read per command topic and one per consumer group.
 */
export async function readCommandLag(admin: Admin): Promise<CommandLag[]> {
  const topics = (await admin.listTopics()).filter((t) => COMMAND_TOPIC.test(t) && !t.endsWith('.DLT')).sort();
  if (topics.length === 0) return [];
  const ends = new Map<string, { partition: number; high: bigint; low: bigint }[]>();
  for (const topic of topics) {
    const offsets = await admin.fetchTopicOffsets(topic);
    ends.set(
      topic,
      offsets.map((o) => ({ partition: o.partition, high: BigInt(o.high), low: BigInt(o.low) })),
    );
  }
  const { groups } = await admin.listGroups();
  const consumers = groups.filter((g) => g.protocolType === 'consumer').map((g) => g.groupId);
  const lagOf = new Map<string, { lag: bigint; groups: string[] }>();
  for (const groupId of consumers) {
    const committed = await admin.fetchOffsets({ groupId, topics });
    for (const { topic, partitions } of committed) {
      if (!partitions.some((p) => BigInt(p.offset) >= 0n)) continue;
      let lag = 0n;
      for (const end of ends.get(topic) ?? []) {
        const at = BigInt(partitions.find((p) => p.partition === end.partition)?.offset ?? '-1');
        const position = at < 0n ? end.low : at;
        if (end.high > position) lag += end.high - position;
      }
      const known = lagOf.get(topic);
      if (known === undefined) lagOf.set(topic, { lag, groups: [groupId] });
      else {
        known.groups.push(groupId);
        if (lag > known.lag) known.lag = lag;
      }
    }
  }
  return topics.map((topic) => {
    const capability = COMMAND_TOPIC.exec(topic)?.[1] ?? topic;
    const found = lagOf.get(topic);
    const unconsumed = (ends.get(topic) ?? []).reduce((sum, e) => sum + (e.high - e.low), 0n);
    return { capability, lag: Number(found?.lag ?? unconsumed), groups: found?.groups ?? [] };
  });
}

/** An admin client of `kafka`, connected on first use and made again after a failure. */
export class AdminHandle {
  #admin: Admin | undefined;
  #connecting: Promise<Admin> | undefined;

  constructor(private readonly kafka: Kafka) {}

  /** Runs `use` with a connected admin; on failure the admin is dropped, so a broker back later gets a new one. */
  async with<T>(use: (admin: Admin) => Promise<T>): Promise<T> {
    const admin = await this.#connected();
    try {
      return await use(admin);
    } catch (error) {
      if (this.#admin === admin) {
        this.#admin = undefined;
        await admin.disconnect().catch(() => undefined);
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    const admin = this.#admin ?? (await this.#connecting?.catch(() => undefined));
    this.#admin = undefined;
    this.#connecting = undefined;
    await admin?.disconnect().catch(() => undefined);
  }

  async #connected(): Promise<Admin> {
    if (this.#admin !== undefined) return this.#admin;
    this.#connecting ??= (async () => {
      const admin = this.kafka.admin();
      try {
        await admin.connect();
      } catch (error) {
        await admin.disconnect().catch(() => undefined);
        throw error;
      }
      this.#admin = admin;
      return admin;
    })().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }
}

/** Asks the cluster for its brokers: answers only when a broker is reachable and serving. */
export async function describeCluster(admin: Admin): Promise<{ brokers: number }> {
  const cluster = await admin.describeCluster();
  return { brokers: cluster.brokers.length };
}
