import { randomUUID } from 'node:crypto';
import type { Kafka } from '../../src/kafka/kafka-client.js';
import { runOutboxConsumer, type OutboxConsumer } from '../../src/kafka/outbox-consumer.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import {
  commandTopic,
  stepCommandSchema,
  type StepCommand,
  type StepError,
  type StepReply,
} from '../../src/protocol/messages.js';
import { uniqueName } from './stack.js';
import { createRecordProducer } from '../../src/kafka/producer.js';
import { logger } from '../../src/logger.js';
import { ShardPresence } from '../../src/worker/shard-presence.js';

/*
 * A minimal service for control-plane tests: it consumes commands exactly as Debezium
 * delivers them and replies on the command's reply topic with a plain kafkajs producer,
 * so the tests exercise the real path without depending on the worker SDK.
 */

export type Handler = (command: StepCommand) => Promise<{ output: unknown } | { error: StepError } | 'no-reply'>;

/** A reply before the worker stamps it (distributes over the union of reply kinds). */
export type ReplyDraft = StepReply extends infer R
  ? R extends StepReply
    ? Omit<R, 'messageId' | 'workerId' | 'at'> & { messageId?: string }
    : never
  : never;

export interface TestWorker {
  readonly received: StepCommand[];
  /** Sends a reply as a worker would (also for duplicate-delivery tests). */
  reply(reply: ReplyDraft, topic: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestWorker(kafka: Kafka, handlers: Record<string, Handler>): Promise<TestWorker> {
  const topics = Object.keys(handlers).map(commandTopic);
  await ensureTopics(kafka, topics);
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  const received: StepCommand[] = [];
  const workerId = uniqueName('test-worker');
  const reply: TestWorker['reply'] = async (r, topic) => {
    const message = { ...r, messageId: r.messageId ?? randomUUID(), workerId, at: new Date().toISOString() };
    await producer.send({ topic, messages: [{ key: r.executionId, value: JSON.stringify(message) }] });
  };
  // Announced in the shard registry as any worker must be: control planes hold the
  // commands of capabilities no live shard serves.
  const announcer = createRecordProducer(kafka);
  const presence = new ShardPresence(
    {
      shardId: workerId,
      service: 'test-worker',
      instance: workerId,
      incarnation: randomUUID(),
      region: null,
      capabilities: Object.keys(handlers).map((name) => ({ name, version: 1 })),
      concurrency: 6,
    },
    announcer,
    1_000,
    () => 0,
    logger,
  );
  await presence.start();
  const consumers: OutboxConsumer[] = [];
  consumers.push(
    await runOutboxConsumer({
      kafka,
      groupId: uniqueName('test-worker-group'),
      topics,
      fromBeginning: true,
      partitionsConsumedConcurrently: 6,
      handle: async (record) => {
        const command = stepCommandSchema.parse(record.payload);
        received.push(command);
        const handler = handlers[command.capability];
        if (handler === undefined) throw new Error(`no handler for ${command.capability}`);
        const base = { executionId: command.executionId, stepExecutionId: command.stepExecutionId };
        await reply({ ...base, kind: 'step.started' }, command.replyTopic);
        const result = await handler(command);
        if (result === 'no-reply') return;
        if ('error' in result) await reply({ ...base, kind: 'step.failed', error: result.error }, command.replyTopic);
        else await reply({ ...base, kind: 'step.completed', output: result.output }, command.replyTopic);
      },
      onMalformed: async (error) => {
        throw error;
      },
    }),
  );
  return {
    received,
    reply,
    stop: async () => {
      await Promise.all(consumers.map((c) => c.stop()));
      await presence.stop();
      await announcer.disconnect();
      await producer.disconnect();
    },
  };
}
