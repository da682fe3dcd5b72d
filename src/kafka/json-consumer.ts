import type { KafkaMessage } from 'kafkajs';
import type { Kafka } from './kafka-client.js';
import { runSupervisedConsumer } from './supervised-consumer.js';

/** Where a record came from, for errors and dead letters. */
export interface RecordOrigin {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: string | undefined;
  readonly message: KafkaMessage;
}

export interface JsonConsumerOptions {
  readonly kafka: Kafka;
  readonly groupId: string;
  readonly topics: readonly string[];
  /** @default false */
  readonly fromBeginning?: boolean;
  /**
   * How long a silent member keeps its partitions: after a crash, its partitions move
   * to the others this much later. @default 10000
   */
  readonly sessionTimeoutMs?: number;
  /** Partitions handled at once; records of one partition stay in order. @default 1 */
  readonly partitionsConsumedConcurrently?: number;
  /** Called per record whose value parsed as JSON; a throw retries the record. */
  readonly handle: (value: unknown, origin: RecordOrigin) => Promise<void>;
  /** Called per record whose value is missing or not JSON; its offset is committed after. */
  readonly onUndecodable: (error: Error, origin: RecordOrigin) => Promise<void>;
}

export interface RunningConsumer {
  stop(): Promise<void>;
}

/** A consumer group member over JSON-valued records (read_committed). */
export async function runJsonConsumer(options: JsonConsumerOptions): Promise<RunningConsumer> {
  const sessionTimeout = options.sessionTimeoutMs ?? 10_000;
  const consumer = await runSupervisedConsumer(
    options.kafka,
    {
      groupId: options.groupId,
      readUncommitted: false,
      maxWaitTimeInMs: 50,
      sessionTimeout,
      heartbeatInterval: Math.max(500, Math.floor(sessionTimeout / 4)),
    },
    { topics: [...options.topics], fromBeginning: options.fromBeginning ?? false },
    {
      partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 1,
      eachMessage: async ({ topic, partition, message }) => {
        const origin: RecordOrigin = {
          topic,
          partition,
          offset: message.offset,
          key: message.key?.toString('utf8'),
          message,
        };
        let value: unknown;
        try {
          if (message.value === null) throw new Error('the record has no value');
          value = JSON.parse(message.value.toString('utf8'));
        } catch (error) {
          await options.onUndecodable(error instanceof Error ? error : new Error(String(error)), origin);
          return;
        }
        await options.handle(value, origin);
      },
    },
  );
  return { stop: () => consumer.stop() };
}
