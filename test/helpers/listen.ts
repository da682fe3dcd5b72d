import { setTimeout as sleep } from 'node:timers/promises';
import type { KafkaMessage } from 'kafkajs';
import type { Kafka } from '../../src/kafka/kafka-client.js';
import { runJsonConsumer } from '../../src/kafka/json-consumer.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import { DLT_HEADERS, type StepReply } from '../../src/protocol/messages.js';
import { uniqueName } from './stack.js';

/** One record heard: its JSON value (undefined when it has none) and the raw message. */
export interface Heard {
  readonly topic: string;
  readonly value: unknown;
  readonly message: KafkaMessage;
}

export interface Listener {
  /** Every record so far, in arrival order. */
  readonly seen: Heard[];
  /** The replies naming this execution. */
  replies(executionId: string): StepReply[];
  /** Waits until `check` holds; on timeout, throws naming `what` and what was heard. */
  until(check: () => boolean, what: string, timeoutMs?: number): Promise<void>;
}

/**
 * Hears every record of `topics` from the beginning, decodable as JSON or not, in a
 * consumer group of its own (stopped by `cleanup`). Topics it creates get `partitions`.
 */
export async function listen(
  kafka: Kafka,
  topics: string[],
  cleanup: (() => Promise<void>)[],
  options: { partitions?: number } = {},
): Promise<Listener> {
  await ensureTopics(kafka, topics, options.partitions === undefined ? {} : { partitions: options.partitions });
  const seen: Heard[] = [];
  const consumer = await runJsonConsumer({
    kafka,
    groupId: uniqueName('test-listen'),
    topics,
    fromBeginning: true,
    handle: async (value, origin) => void seen.push({ topic: origin.topic, value, message: origin.message }),
    onUndecodable: async (_error, origin) =>
      void seen.push({ topic: origin.topic, value: undefined, message: origin.message }),
  });
  cleanup.push(() => consumer.stop());
  return {
    seen,
    replies: (executionId) =>
      seen
        .filter((s) => (s.value as StepReply | undefined)?.executionId === executionId)
        .map((s) => s.value as StepReply),
    async until(check, what, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) {
          const heard = seen.map(
            (s) =>
              `${s.topic}: ${s.message.headers?.[DLT_HEADERS.errorMessage]?.toString() ?? JSON.stringify(s.value)}`,
          );
          throw new Error(`timed out waiting for ${what}; heard ${JSON.stringify(heard)}`);
        }
        await sleep(50);
      }
    },
  };
}
