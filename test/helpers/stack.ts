import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KafkaMessage } from 'kafkajs';
import type { Kysely } from 'kysely';
import { createDatabase } from '../../src/db/database.js';
import type { Database } from '../../src/db/schema.js';
import { createKafka, type Kafka } from '../../src/kafka/kafka-client.js';
import { runOutboxConsumer } from '../../src/kafka/outbox-consumer.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import type { OutboxRecord } from '../../src/kafka/outbox-record.js';
import type { MalformedRecordError } from '../../src/errors.js';
import { databaseUrl, kafkaBrokers, loadStackConfig, type StackConfig } from '../../src/stack/config.js';

/*
 * Integration tests run against the real stack started by `npm test` (scripts/stack.ts up).
 * Isolation comes from names: every test makes its own topics, consumer groups and keys.
 */

export const stackConfig: StackConfig = loadStackConfig();

/** A name no other test (or earlier run) uses: `<prefix>-<random hex>`. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

export function testDatabase(): Kysely<Database> {
  return createDatabase({ connectionString: databaseUrl(stackConfig), applicationName: 'sous-test' });
}

export function testKafka(): Kafka {
  return createKafka({ brokers: kafkaBrokers(stackConfig), clientId: uniqueName('sous-test') });
}

/** A test file's database and Kafka client, and what to undo after its tests. */
export interface TestResources {
  readonly db: Kysely<Database>;
  readonly kafka: Kafka;
  /** Steps run after the file's tests, last pushed first, before the database pool closes. */
  readonly cleanup: (() => Promise<void>)[];
}

/** The resources of the calling test file, released after its tests (node:test `after`). */
export function testResources(): TestResources {
  const db = testDatabase();
  const kafka = testKafka();
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
    await db.destroy();
  });
  return { db, kafka, cleanup };
}

export interface Collected {
  readonly records: OutboxRecord[];
  readonly malformed: { error: MalformedRecordError; message: KafkaMessage }[];
}

/**
 * Consumes `topics` from the beginning with a fresh group until `done(collected)` holds,
 * or fails after `timeoutMs` saying how much arrived.
 */
export async function collectUntil(
  kafka: Kafka,
  topics: string[],
  done: (collected: Collected) => boolean,
  { timeoutMs = 60_000 }: { timeoutMs?: number } = {},
): Promise<Collected> {
  const collected: Collected = { records: [], malformed: [] };
  // Debezium creates a routed topic when it first produces to it, which may be after this
  // subscribes: a subscription to a topic that does not exist yet fails
  // (UNKNOWN_TOPIC_OR_PARTITION), so the topics are made (as Connect would make them) first.
  await ensureTopics(kafka, topics);
  const consumer = await runOutboxConsumer({
    kafka,
    groupId: uniqueName('sous-test-group'),
    topics,
    fromBeginning: true,
    handle: async (record) => void collected.records.push(record),
    onMalformed: async (error, message) => void collected.malformed.push({ error, message }),
  });
  try {
    const deadline = Date.now() + timeoutMs;
    while (!done(collected)) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms on ${topics.join(',')}: ${collected.records.length} records, ${collected.malformed.length} malformed`,
        );
      }
      await sleep(50);
    }
    return collected;
  } finally {
    await consumer.stop();
  }
}
