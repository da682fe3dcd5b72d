import type { KafkaMessage } from 'kafkajs';
import { MalformedRecordError } from '../errors.js';
import type { Kafka } from './kafka-client.js';
import { decodeOutboxRecord, type OutboxRecord } from './outbox-record.js';
import { runSupervisedConsumer } from './supervised-consumer.js';

export interface OutboxConsumerOptions {
  readonly kafka: Kafka;
  /** Consumer group: members share the topics' partitions. */
  readonly groupId: string;
  readonly topics: readonly string[];
  /** Start a new group at the earliest offset rather than the latest. @default false */
  readonly fromBeginning?: boolean;
  /** Called once per decoded record, in order per partition. A throw retries the record. */
  readonly handle: (record: OutboxRecord, message: KafkaMessage) => Promise<void>;
  /**
   * Called for each record that does not decode; its offset is committed after this
   * returns, so this is where a record goes to a dead-letter topic or a log. Required:
   * a bad record is never dropped silently.
   */
  readonly onMalformed: (
    error: MalformedRecordError,
    message: KafkaMessage,
    where: { topic: string; partition: number },
  ) => Promise<void>;
  /** A crashed member's partitions move to the others this much later. @default 10000 */
  readonly sessionTimeoutMs?: number;
  /** Partitions processed at once. @default 1 */
  readonly partitionsConsumedConcurrently?: number;
}

export interface OutboxConsumer {
  /** Resolves once the group has been joined and partitions assigned. */
  readonly ready: Promise<void>;
  /** Leaves the group after the records in hand are handled. */
  stop(): Promise<void>;
}

/** Consumes outbox records with a kafkajs consumer group (read_committed). */
export async function runOutboxConsumer(options: OutboxConsumerOptions): Promise<OutboxConsumer> {
  const sessionTimeout = options.sessionTimeoutMs ?? 10_000;
  return runSupervisedConsumer(
    options.kafka,
    {
      groupId: options.groupId,
      // Only records of committed Connect transactions (exactly-once source delivery).
      readUncommitted: false,
      maxWaitTimeInMs: 100,
      sessionTimeout,
      heartbeatInterval: Math.max(500, Math.floor(sessionTimeout / 4)),
    },
    { topics: [...options.topics], fromBeginning: options.fromBeginning ?? false },
    {
      partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 1,
      eachMessage: async ({ topic, partition, message }) => {
        let record: OutboxRecord;
        try {
          record = decodeOutboxRecord(topic, partition, message);
        } catch (error) {
          if (!(error instanceof MalformedRecordError)) throw error;
          await options.onMalformed(error, message, { topic, partition });
          return;
        }
        await options.handle(record, message);
      },
    },
  );
}
