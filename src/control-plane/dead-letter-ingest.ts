import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { isDataException } from '../db/sqlstate.js';
import type { Kafka } from '../kafka/kafka-client.js';
import { runSupervisedConsumer, type SupervisedConsumer } from '../kafka/supervised-consumer.js';
import type { Logger } from '../logger.js';
import { insertDeadLetter, type DeadLetterRow } from '../store/dead-letters.js';
import { base64, deadLetterRow } from './dead-letter-record.js';

/**
 * Stores a dead letter once: the same DLT topic, partition and offset read again changes
 * nothing. A record PostgreSQL refuses as it is (a value it cannot store, such as JSON
 * holding `\u0000`) is stored minimally instead: its raw value in base64 in payload_text,
 * no parsed payload and no typed fields taken from it, so one poison record never stops
 * the ingest and is still kept for inspection.
 */
export async function storeDeadLetter(
  db: Kysely<Database>,
  row: Omit<DeadLetterRow, 'status'>,
  rawValue?: Buffer | null,
): Promise<boolean> {
  try {
    return await insertDeadLetter(db, row);
  } catch (error) {
    if (!isDataException(error)) throw error;
    return insertDeadLetter(db, {
      ...row,
      payload: null,
      payload_text: rawValue === undefined || rawValue === null ? row.payload_text : base64(rawValue),
      original_partition: null,
      original_offset: null,
      attempts: null,
      failed_at: null,
      execution_id: null,
      step_key: null,
      step_execution_id: null,
    });
  }
}

export interface DeadLetterIngestOptions {
  readonly kafka: Kafka;
  readonly db: Kysely<Database>;
  /** @default 'sous-dead-letters' */
  readonly groupId?: string;
  /** Which topics are dead-letter topics. @default /\.DLT$/ */
  readonly topicPattern?: RegExp;
  /** How often to look for new dead-letter topics. @default 10000 */
  readonly refreshMs?: number;
  readonly logger: Logger;
}

export interface DeadLetterIngest {
  stop(): Promise<void>;
  /** Dead-letter topics consumed now. */
  topics(): readonly string[];
}

/**
 * Copies every record of every dead-letter topic into sous.dead_letter, committing
 * offsets only after the row is stored (a crash re-reads, the unique key dedupes).
 * Topics that appear later are picked up at the next refresh.
 */
export async function runDeadLetterIngest(options: DeadLetterIngestOptions): Promise<DeadLetterIngest> {
  const pattern = options.topicPattern ?? /\.DLT$/;
  const log = options.logger.child({ component: 'dead-letter-ingest' });
  let consumer: SupervisedConsumer | undefined;
  let subscribed: string[] = [];
  const stopping = new AbortController();
  const admin = options.kafka.admin();
  await admin.connect();

  const listDeadLetterTopics = async () =>
    (await admin.listTopics()).filter((t) => pattern.test(t) && !t.startsWith('__')).sort();

  const subscribe = async (topics: string[]) => {
    await consumer?.stop();
    consumer = undefined;
    subscribed = topics;
    if (topics.length === 0) return;
    consumer = await runSupervisedConsumer(
      options.kafka,
      {
        groupId: options.groupId ?? 'sous-dead-letters',
        sessionTimeout: 10_000,
        heartbeatInterval: 2_500,
        maxWaitTimeInMs: 200,
      },
      { topics, fromBeginning: true },
      {
        eachMessage: async ({ topic, partition, message }) => {
          const stored = await storeDeadLetter(options.db, deadLetterRow(topic, partition, message), message.value);
          if (stored) log.info({ topic, partition, offset: message.offset }, 'dead letter stored');
        },
      },
      log,
    );
  };

  await subscribe(await listDeadLetterTopics());
  const refresh = (async () => {
    for (;;) {
      try {
        await sleep(options.refreshMs ?? 10_000, undefined, { signal: stopping.signal });
      } catch {
        return; // Stopped.
      }
      try {
        const topics = await listDeadLetterTopics();
        if (topics.join('\n') !== subscribed.join('\n')) {
          log.info({ topics }, 'dead-letter topics changed; resubscribing');
          await subscribe(topics);
        }
      } catch (error) {
        log.warn(
          { reason: error instanceof Error ? error.message : String(error) },
          'listing dead-letter topics failed',
        );
      }
    }
  })();

  return {
    topics: () => subscribed,
    async stop() {
      stopping.abort();
      await refresh;
      await consumer?.stop();
      await admin.disconnect();
    },
  };
}
