import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Batch, IHeaders, Producer } from 'kafkajs';
import { logger as rootLogger, type Logger } from '../logger.js';
import type { Kafka } from './kafka-client.js';
import { runSupervisedConsumer, type SupervisedConsumer } from './supervised-consumer.js';
import { ensureCompactedTopic } from './compacted-topic-reader.js';
import { ensureTopics } from './topics.js';

/*
 * Exactly-once copy of records from one cluster into another, on Kafka's own machinery:
 * the destination cluster's transactions. Kafka's sendOffsetsToTransaction commits a
 * consumer group's offsets inside a transaction only when the group lives on the same
 * cluster, so the positions in the source are stored in the destination instead: each
 * transaction holds the copied records AND a record of the next source offset per
 * partition in a compacted topic of the destination. Both become visible together or not
 * at all; a restart reads the positions back (read_committed) and skips what was copied.
 * The transactional id fences a relay that lingers after its replacement started (a
 * zombie can no longer commit), and aborts a transaction it left open.
 */

/** A record read from the source, in a client-neutral shape (kafkajs stays in src/kafka/). */
export interface SourceRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Readonly<Record<string, string>>;
}

/** Where one record goes in the destination. */
export interface DestinationRecord {
  readonly topic: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Readonly<Record<string, string>>;
}

export interface TransactionalCopyOptions {
  readonly source: Kafka;
  readonly destination: Kafka;
  /** Topics read in the source. Created there when missing. */
  readonly sourceTopics: readonly string[];
  /** Consumer group in the source (its committed offsets are a hint only; the truth is in the destination). */
  readonly groupId: string;
  /** Transactional id in the destination: one per (source, destination) pair. */
  readonly transactionalId: string;
  /** Compacted topic of the destination holding the source positions. */
  readonly offsetsTopic: string;
  /** Names this copy's positions in the offsets topic (e.g. the source region). */
  readonly positionPrefix: string;
  /**
   * Where a record goes (pure). `exists` says whether a topic exists in the destination
   * (as listed at most one batch ago): a record whose topic does not must be routed
   * elsewhere (a dead-letter topic), or its transaction fails and the partition stalls.
   */
  readonly route: (record: SourceRecord, exists: (topic: string) => boolean) => DestinationRecord;
  /** Topics routes may name, created in the destination before the first copy. */
  readonly destinationTopics?: readonly string[];
  /**
   * Most bytes fetched per source partition and request: bounds a transaction's size (a
   * batch is one transaction). @default 1048576 (kafkajs's default)
   */
  readonly fetchMaxBytes?: number;
  /** Called after each committed transaction with the records it held. */
  readonly onCommitted?: (records: readonly DestinationRecord[]) => void;
  readonly logger?: Logger;
}

export interface TransactionalCopy {
  /** Resolves when the first session has read its positions and joined the source group. */
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

const positionKey = (prefix: string, topic: string, partition: number) => `${prefix}|${topic}|${partition}`;

function headersOf(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    // The outbox router writes a header without a value for a NULL column (no traceparent):
    // a header without a value is not copied.
    const first: unknown = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') out[name] = first;
    else if (Buffer.isBuffer(first)) out[name] = first.toString('utf8');
  }
  return out;
}

/**
 * Runs the copy until stop(): sessions one after the other. A session fences the
 * previous holder of the transactional id, reads the positions back, and copies batch by
 * batch, one transaction each; any failure (either cluster down, fenced) ends the session
 * and a new one starts after a back-off, from the positions as committed.
 */
export async function runTransactionalCopy(options: TransactionalCopyOptions): Promise<TransactionalCopy> {
  const log = (options.logger ?? rootLogger).child({ component: 'transactional-copy', id: options.transactionalId });
  let stopped = false;
  let current: Session | undefined;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  let wake: () => void = () => undefined;
  // Read through a function: stop() changes it while the loop awaits.
  const isStopped = () => stopped;

  const loop = async () => {
    let backoffMs = 500;
    while (!isStopped()) {
      const session = new Session(options, log);
      current = session;
      try {
        await session.start();
        markReady();
        backoffMs = 500;
        await session.failed;
      } catch (error) {
        if (isStopped()) break;
        log.warn(
          { reason: error instanceof Error ? error.message : String(error) },
          'relay session ended; starting again',
        );
      } finally {
        await session.close();
      }
      if (isStopped()) break;
      await Promise.race([sleep(backoffMs), new Promise<void>((resolve) => (wake = resolve))]);
      backoffMs = Math.min(backoffMs * 2, 10_000);
    }
  };
  const running = loop();
  return {
    ready,
    async stop() {
      stopped = true;
      wake();
      current?.fail(new Error('stopped'));
      await running;
    },
  };
}

class Session {
  readonly failed: Promise<void>;
  #fail: (error: Error) => void = () => undefined;
  #broken = false;
  #producer: Producer | undefined;
  #consumer: SupervisedConsumer | undefined;
  /** Next source offset per `topic|partition`, as committed in the destination. */
  readonly #positions = new Map<string, bigint>();
  /** Topics of the destination, listed at start and again when a batch names one not in it. */
  #topics = new Set<string>();

  constructor(
    private readonly options: TransactionalCopyOptions,
    private readonly log: Logger,
  ) {
    this.failed = new Promise<void>((_resolve, reject) => {
      this.#fail = (error) => reject(error);
    });
    this.failed.catch(() => undefined);
  }

  fail(error: Error): void {
    this.#broken = true;
    this.#fail(error);
  }

  async start(): Promise<void> {
    const o = this.options;
    await ensureCompactedTopic(o.destination, o.offsetsTopic);
    if (o.destinationTopics !== undefined) await ensureTopics(o.destination, o.destinationTopics);
    await ensureTopics(o.source, o.sourceTopics);
    // Connecting a transactional producer fences every earlier producer of this id and
    // aborts the transaction it left open, so the positions read below are final.
    const producer = o.destination.producer({
      transactionalId: o.transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: 60_000,
    });
    this.#producer = producer;
    await producer.connect();
    await this.#readPositions(producer);
    await this.#listTopics();
    this.#consumer = await runSupervisedConsumer(
      o.source,
      {
        groupId: o.groupId,
        readUncommitted: false,
        allowAutoTopicCreation: false,
        ...(o.fetchMaxBytes === undefined
          ? {}
          : { maxBytesPerPartition: o.fetchMaxBytes, maxBytes: o.fetchMaxBytes * 4 }),
      },
      { topics: [...o.sourceTopics], fromBeginning: true },
      {
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: async (payload) => {
          if (this.#broken || !payload.isRunning() || payload.isStale()) return;
          try {
            const last = await this.#copy(payload.batch);
            if (last !== undefined) payload.resolveOffset(last);
          } catch (error) {
            this.fail(error instanceof Error ? error : new Error(String(error)));
          }
        },
      },
      this.log,
    );
    await this.#consumer.ready;
  }

  /**
   * Writes a marker of this session in a transaction, then reads the positions topic
   * from its beginning until the marker: every position committed before is seen.
   */
  async #readPositions(producer: Producer): Promise<void> {
    const o = this.options;
    const markerKey = `${o.positionPrefix}|marker`;
    const nonce = randomBytes(8).toString('hex');
    const tx = await producer.transaction();
    try {
      await tx.send({ topic: o.offsetsTopic, messages: [{ key: markerKey, value: nonce }] });
      await tx.commit();
    } catch (error) {
      await tx.abort().catch(() => undefined);
      throw error;
    }
    const reader = o.destination.consumer({
      groupId: `${o.groupId}.positions.${randomBytes(6).toString('hex')}`,
      readUncommitted: false,
    });
    let seen: () => void = () => undefined;
    const found = new Promise<void>((resolve) => (seen = resolve));
    await reader.connect();
    try {
      await reader.subscribe({ topics: [o.offsetsTopic], fromBeginning: true });
      await reader.run({
        eachMessage: async ({ message }) => {
          const key = message.key?.toString('utf8') ?? '';
          const value = message.value?.toString('utf8');
          if (key === markerKey) {
            if (value === nonce) seen();
            return;
          }
          if (!key.startsWith(`${o.positionPrefix}|`) || value === undefined) return;
          this.#positions.set(key, BigInt(value));
        },
      });
      await Promise.race([
        found,
        sleep(60_000).then(() => Promise.reject(new Error(`positions of ${o.transactionalId} not read in 60 s`))),
      ]);
    } finally {
      await reader.disconnect();
    }
    this.log.info(
      { positions: Object.fromEntries([...this.#positions].map(([k, v]) => [k, String(v)])) },
      'relay positions read',
    );
  }

  async #listTopics(): Promise<void> {
    const admin = this.options.destination.admin();
    await admin.connect();
    try {
      this.#topics = new Set(await admin.listTopics());
    } finally {
      await admin.disconnect();
    }
  }

  /** Routes records, listing the destination's topics again first when one names a topic not known yet. */
  async #route(records: readonly SourceRecord[]): Promise<DestinationRecord[]> {
    const exists = (topic: string) => this.#topics.has(topic);
    let routed = records.map((r) => this.options.route(r, () => true));
    if (routed.some((r) => !exists(r.topic))) {
      await this.#listTopics();
      routed = records.map((r) => this.options.route(r, exists));
    }
    return routed;
  }

  /** Copies the batch's records not copied yet in one transaction; returns the last offset handled. */
  async #copy(batch: Batch): Promise<string | undefined> {
    const o = this.options;
    const producer = this.#producer;
    if (producer === undefined || batch.messages.length === 0) return undefined;
    const key = positionKey(o.positionPrefix, batch.topic, batch.partition);
    const from = this.#positions.get(key) ?? 0n;
    // Records before the stored position were copied by an earlier session (the source
    // group's offsets are committed after the destination's transaction, so they may lag).
    const fresh = batch.messages.filter((m) => BigInt(m.offset) >= from);
    const lastOffset = batch.messages.at(-1)?.offset;
    if (fresh.length === 0 || lastOffset === undefined) return lastOffset;
    const records = await this.#route(
      fresh.map((m) => ({
        topic: batch.topic,
        partition: batch.partition,
        offset: m.offset,
        key: m.key ?? null,
        value: m.value ?? null,
        headers: headersOf(m.headers),
      })),
    );
    const next = BigInt(lastOffset) + 1n;
    const byTopic = new Map<string, DestinationRecord[]>();
    for (const r of records) byTopic.set(r.topic, [...(byTopic.get(r.topic) ?? []), r]);
    const tx = await producer.transaction();
    try {
      await tx.sendBatch({
        topicMessages: [
          ...[...byTopic].map(([topic, rs]) => ({
            topic,
            messages: rs.map((r) => ({ key: r.key, value: r.value, headers: { ...r.headers } })),
          })),
          { topic: o.offsetsTopic, messages: [{ key, value: String(next) }] },
        ],
      });
      await tx.commit();
    } catch (error) {
      await tx.abort().catch(() => undefined);
      throw error;
    }
    this.#positions.set(key, next);
    o.onCommitted?.(records);
    // A hint for lag metrics and a faster restart; never trusted over the stored position.
    await this.#consumer
      ?.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(next) }])
      .catch(() => undefined);
    return lastOffset;
  }

  async close(): Promise<void> {
    this.#broken = true;
    await this.#consumer?.stop().catch(() => undefined);
    await this.#producer?.disconnect().catch(() => undefined);
  }
}
