import { MalformedRecordError } from '../errors.js';
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
  /**
   * When given, records of one partition come in chunks of up to `maxBatch`, in order,
   * instead of one by one to `handle`; a throw retries the chunk (so handling must be
   * idempotent, as it must be anyway). Offsets advance only past chunks handled.
   */
  readonly handleBatch?: (records: readonly { value: unknown; origin: RecordOrigin }[]) => Promise<void>;
  /** Largest chunk given to `handleBatch`. @default 50 */
  readonly maxBatch?: number;
  /**
   * A full chunk still takes the records that follow while their keys are already in it,
   * up to this many records in all (a chunk stays a run of consecutive offsets). For a
   * handler whose cost is mostly per key and per chunk (the control plane: one lock and
   * one state write per execution, one transaction per chunk), so one hot key (a large
   * forEach's replies) is not cut into many small chunks. @default maxBatch
   */
  readonly maxBatchSameKey?: number;
  /** Called per record whose value is missing or not JSON; its offset is committed after. */
  readonly onUndecodable: (error: Error, origin: RecordOrigin) => Promise<void>;
}

export interface RunningConsumer {
  stop(): Promise<void>;
  /** The member is in its group now (readiness). */
  joined(): boolean;
}

/** The record's JSON value, or the reason it has none. */
function decode(topic: string, partition: number, message: KafkaMessage): { value: unknown } | { error: Error } {
  const where = { topic, partition, offset: message.offset };
  if (message.value === null) return { error: new MalformedRecordError('the record has no value', where) };
  try {
    return { value: JSON.parse(message.value.toString('utf8')) as unknown };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { error: new MalformedRecordError(`the record's value is not JSON (${reason})`, where, { cause: error }) };
  }
}

function originOf(topic: string, partition: number, message: KafkaMessage): RecordOrigin {
  return { topic, partition, offset: message.offset, key: message.key?.toString('utf8'), message };
}

/**
 * Where the chunk starting at `start` ends: `maxBatch` records, then further records whose
 * key is already in the chunk, up to `maxSameKey` in all; never past the first record
 * that cannot join (records stay in offset order). A record without a key is a key of its own.
 */
export function chunkEnd(
  messages: readonly Pick<KafkaMessage, 'key'>[],
  start: number,
  maxBatch: number,
  maxSameKey: number,
): number {
  const keys = new Set<string>();
  let end = start;
  while (end < messages.length && end - start < maxSameKey) {
    // latin1 maps bytes to characters one to one: distinct keys stay distinct.
    const key = messages[end]?.key?.toString('latin1');
    const known = key !== undefined && keys.has(key);
    if (end - start >= maxBatch && !known) break;
    if (key !== undefined) keys.add(key);
    end++;
  }
  return end;
}

/** A consumer group member over JSON-valued records (read_committed). */
export async function runJsonConsumer(options: JsonConsumerOptions): Promise<RunningConsumer> {
  const sessionTimeout = options.sessionTimeoutMs ?? 10_000;
  const handleBatch = options.handleBatch;
  const maxBatch = options.maxBatch ?? 50;
  const maxBatchSameKey = Math.max(maxBatch, options.maxBatchSameKey ?? maxBatch);
  const consumer = await runSupervisedConsumer(
    options.kafka,
    {
      groupId: options.groupId,
      readUncommitted: false,
      // A fetch returns as soon as a record arrives (minBytes 1), so the wait bounds only idle
      // polling: 100 ms costs less idle CPU than 50 at the same latency (npm run bench:latency).
      maxWaitTimeInMs: 100,
      sessionTimeout,
      heartbeatInterval: Math.max(500, Math.floor(sessionTimeout / 4)),
    },
    { topics: [...options.topics], fromBeginning: options.fromBeginning ?? false },
    handleBatch === undefined
      ? {
          partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 1,
          eachMessage: async ({ topic, partition, message }) => {
            const origin = originOf(topic, partition, message);
            const decoded = decode(topic, partition, message);
            if ('error' in decoded) await options.onUndecodable(decoded.error, origin);
            else await options.handle(decoded.value, origin);
          },
        }
      : {
          partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 1,
          eachBatchAutoResolve: false,
          eachBatch: async (payload) => {
            const { batch } = payload;
            for (let start = 0; start < batch.messages.length;) {
              if (!payload.isRunning() || payload.isStale()) return;
              const end = chunkEnd(batch.messages, start, maxBatch, maxBatchSameKey);
              const chunk = batch.messages.slice(start, end);
              start = end;
              const good: { value: unknown; origin: RecordOrigin }[] = [];
              for (const message of chunk) {
                const origin = originOf(batch.topic, batch.partition, message);
                const decoded = decode(batch.topic, batch.partition, message);
                if ('error' in decoded) await options.onUndecodable(decoded.error, origin);
                else good.push({ value: decoded.value, origin });
              }
              if (good.length > 0) await handleBatch(good);
              const last = chunk.at(-1);
              if (last !== undefined) payload.resolveOffset(last.offset);
              await payload.heartbeat();
            }
          },
        },
  );
  return { stop: () => consumer.stop(), joined: () => consumer.joined() };
}
