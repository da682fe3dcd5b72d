import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT_CONTEXT, trace, type Context, type Span } from '@opentelemetry/api';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { isDataException } from '../db/sqlstate.js';
import { publishDeadLetter } from '../kafka/dead-letter.js';
import type { RecordOrigin } from '../kafka/json-consumer.js';
import type { RecordProducer } from '../kafka/producer.js';
import type { Logger } from '../logger.js';
import type { ControlPlaneMetrics } from '../observability/control-plane-metrics.js';
import type { DecisionObserver } from '../observability/decision-observer.js';
import { ATTR } from '../observability/span-attributes.js';
import { contextFromHeaders } from '../observability/trace-context.js';
import { consumerSpan, endSpan } from '../observability/tracing.js';
import { applyReplies, applyReply, parseReply, type BatchOutcome, type ReplyTopicMessage } from './apply-reply.js';
import { createBatchCoalescer } from './batch-coalescer.js';
import type { ControlPlaneConfig } from './control-plane-options.js';
import type { DecisionEnvironment } from './decision-environment.js';
import { ExecutionNotFoundError, ReplyInvalidError, ReplyNotStorableError } from './errors.js';

/**
 * How many times `replyBatchSize` replies one batch may hold when the replies past the
 * first `replyBatchSize` go to executions already in it (a hot execution: a forEach).
 */
const HOT_EXECUTION_BATCH = 10;

/** How the reply consumer hands records over in batches (runJsonConsumer's batch options). */
export interface ReplyBatching {
  /** The records of one partition, decided together (one commit, shared with other partitions'). */
  readonly handleBatch: (records: readonly { value: unknown; origin: RecordOrigin }[]) => Promise<void>;
  readonly maxBatch: number;
  readonly maxBatchSameKey: number;
}

/** A reply taken from Kafka, with its CONSUMER span's context (its decision's parent). */
interface ReceivedReply {
  readonly message: ReplyTopicMessage;
  readonly trace: Context;
}

/** What the reply intake needs of its control plane. */
export interface ReplyIntakeDeps {
  readonly db: Kysely<Database>;
  readonly environment: DecisionEnvironment;
  readonly observer: DecisionObserver;
  readonly metrics: ControlPlaneMetrics;
  /** Publishes to the reply topic's dead-letter topic. */
  readonly producer: RecordProducer;
  readonly log: Logger;
  readonly config: Pick<
    ControlPlaneConfig,
    'groupId' | 'unknownExecutionGraceMs' | 'replyTransactions' | 'replyBatchSize' | 'partitionsConsumedConcurrently'
  >;
}

/** The reply consumer's handlers: one record at a time, a batch of one partition, and its dead letters. */
export interface ReplyIntake {
  /** One record, one transaction. */
  readonly handleOne: (value: unknown, origin: RecordOrigin) => Promise<void>;
  /** Batches to decide together; undefined when `replyBatchSize` is 1 (every reply alone). */
  readonly batching: ReplyBatching | undefined;
  /** Sends a record that can never apply to the reply topic's DLT. */
  readonly deadLetter: (error: Error & { code?: string }, origin: RecordOrigin) => Promise<void>;
}

/**
 * How the control plane takes replies from Kafka: parses each, decides it (alone or in a
 * batch), and dead-letters what can never apply; anything passing is thrown for kafkajs
 * to retry.
 */
export function createReplyIntake({
  db,
  environment,
  observer,
  metrics,
  producer,
  log,
  config,
}: ReplyIntakeDeps): ReplyIntake {
  /** A reply the control plane cannot apply goes to the reply topic's DLT, never nowhere. */
  const deadLetter = async (error: Error & { code?: string }, origin: RecordOrigin) => {
    metrics.replies.inc({ outcome: 'dead_lettered' });
    log.error(
      { reason: error.message, topic: origin.topic, partition: origin.partition, offset: origin.offset },
      'reply dead-lettered',
    );
    await publishDeadLetter(producer, {
      topic: origin.topic,
      partition: origin.partition,
      message: origin.message,
      error,
      consumerGroup: config.groupId,
      attempts: 1,
    });
  };

  /**
   * The CONSUMER span of one reply record (`process <reply topic>`), child of the
   * context its headers carry (the worker's PRODUCER span): the parent of its decision.
   */
  const replySpan = (origin: RecordOrigin): Span =>
    consumerSpan(contextFromHeaders(origin.message.headers), {
      topic: origin.topic,
      partition: origin.partition,
      offset: origin.offset,
      key: origin.key,
      consumerGroup: config.groupId,
    });
  const describeReply = (span: Span, message: ReplyTopicMessage) =>
    span.setAttributes({
      [ATTR.messagingMessageId]: message.messageId,
      [ATTR.executionId]: message.executionId,
      [ATTR.replyKind]: message.kind,
    });

  /**
   * One parsed reply, one transaction; what can never apply goes to the DLT.
   *
   * A reply naming an execution this process cannot see is tried again for a while
   * (`unknownExecutionGraceMs`) before it is dead-lettered: PostgreSQL's logical decoding
   * streams a transaction once its commit record is flushed, a moment before the commit is
   * visible to other sessions, so under heavy load a command can reach a worker and its
   * reply come back inside that moment (seen: 4 of 1,000 bulk-started executions on a
   * machine at load 10). A command exists only for a committed execution, so waiting is safe.
   */
  const applyOne = async (message: ReplyTopicMessage, origin: RecordOrigin, span: Span): Promise<void> => {
    const giveUpAt = Date.now() + config.unknownExecutionGraceMs;
    for (let delay = 50; ; delay = Math.min(delay * 2, 2_000)) {
      try {
        await applyOnce(message, span);
        return;
      } catch (error) {
        const left = giveUpAt - Date.now();
        if (error instanceof ExecutionNotFoundError && left > 0) {
          // The last try comes when the grace is over, not before.
          await sleep(Math.min(delay, left));
          continue;
        }
        return settleFailed(error, message, origin, span);
      }
    }
  };
  const applyOnce = async (message: ReplyTopicMessage, span: Span): Promise<void> => {
    const outcome = await observer.run(
      'reply',
      () => applyReply(db, environment, message, trace.setSpan(ROOT_CONTEXT, span)),
      { triggers: (o) => (o === 'applied' ? 1 : 0), runSeconds: runSecondsOf([message]) },
    );
    metrics.replyBatchSize.observe(1);
    metrics.replies.inc({ outcome: outcome === 'applied' ? 'applied' : 'duplicate' });
    span.setAttribute('sous.reply.outcome', outcome);
  };
  /** A reply that failed for good goes to the DLT; anything passing is thrown for kafkajs to retry. */
  const settleFailed = async (
    error: unknown,
    message: ReplyTopicMessage,
    origin: RecordOrigin,
    span: Span,
  ): Promise<void> => {
    if (error instanceof ExecutionNotFoundError) {
      span.setAttribute('sous.reply.outcome', 'dead_lettered');
      return deadLetter(error, origin);
    }
    if (isDataException(error)) {
      span.setAttribute('sous.reply.outcome', 'dead_lettered');
      const reason = error instanceof Error ? error.message : String(error);
      return deadLetter(
        new ReplyNotStorableError(`reply ${message.messageId}: PostgreSQL refused a value (${reason})`, {
          cause: error,
        }),
        origin,
      );
    }
    throw error; // Transient (connection, deadlock): kafkajs retries the record.
  };

  /** One record, one transaction. */
  const handleOne = async (value: unknown, origin: RecordOrigin): Promise<void> => {
    const span = replySpan(origin);
    try {
      let message;
      try {
        message = parseReply(value);
      } catch (error) {
        if (!(error instanceof ReplyInvalidError)) throw error;
        span.setAttribute('sous.reply.outcome', 'dead_lettered');
        await deadLetter(error, origin);
        endSpan(span, error);
        return;
      }
      describeReply(span, message);
      await applyOne(message, origin, span);
      endSpan(span);
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  };

  /**
   * Replies of one partition decided in one transaction (one commit for the chunk), shared
   * with the chunks of other partitions that arrive meanwhile (batch-coalescer.ts). If the
   * transaction fails as a whole, each reply of the chunk is tried alone, so one bad reply
   * cannot hold the others back; replies already applied change nothing the second time.
   */
  const replies = createBatchCoalescer<ReceivedReply, BatchOutcome>({
    apply: async (received) => {
      const messages = received.map((r) => r.message);
      const parents = new Map(received.map((r) => [r.message, r.trace]));
      const outcome = await observer.run('reply', () => applyReplies(db, environment, messages, parents), {
        triggers: (o) => o.applied,
        runSeconds: runSecondsOf(messages),
      });
      metrics.replyBatchSize.observe(messages.length);
      metrics.replies.inc({ outcome: 'applied' }, outcome.applied);
      metrics.replies.inc({ outcome: 'duplicate' }, outcome.duplicates);
      return outcome;
    },
    maxInFlight: config.replyTransactions,
    maxItems: config.replyBatchSize * config.partitionsConsumedConcurrently,
  });

  const handleBatch = async (records: readonly { value: unknown; origin: RecordOrigin }[]): Promise<void> => {
    const parsed: { message: ReplyTopicMessage; origin: RecordOrigin; span: Span }[] = [];
    for (const { value, origin } of records) {
      const span = replySpan(origin);
      try {
        const message = parseReply(value);
        describeReply(span, message);
        parsed.push({ message, origin, span });
      } catch (error) {
        endSpan(span, error);
        if (error instanceof ReplyInvalidError) await deadLetter(error, origin);
        else throw error;
      }
    }
    if (parsed.length === 0) return;
    try {
      let outcome;
      try {
        outcome = await replies.submit(
          parsed.map(({ message, span }) => ({ message, trace: trace.setSpan(ROOT_CONTEXT, span) })),
        );
      } catch (error) {
        log.warn(
          { reason: error instanceof Error ? error.message : String(error), replies: parsed.length },
          'a batch of replies failed; applying them one at a time',
        );
        for (const { message, origin, span } of parsed) await applyOne(message, origin, span);
        for (const { span } of parsed) endSpan(span);
        return;
      }
      // Not visible yet, or never: each is tried alone, in order, for the grace period.
      for (const message of outcome.unknown) {
        const entry = parsed.find((p) => p.message === message);
        if (entry !== undefined) await applyOne(message, entry.origin, entry.span);
      }
      for (const { span } of parsed) endSpan(span);
    } catch (error) {
      // kafkajs retries the chunk: these spans end failed, the retry makes new ones.
      for (const { span } of parsed) endSpan(span, error);
      throw error;
    }
  };

  const batching =
    config.replyBatchSize > 1
      ? { handleBatch, maxBatch: config.replyBatchSize, maxBatchSameKey: config.replyBatchSize * HOT_EXECUTION_BATCH }
      : undefined;
  return { handleOne, batching, deadLetter };
}

/**
 * How long each attempt a final reply finishes ran on its worker: the reply's time less
 * the worker's start, both the worker's clock (so no skew between machines).
 */
function runSecondsOf(messages: readonly ReplyTopicMessage[]): Map<string, number> {
  const seconds = new Map<string, number>();
  for (const m of messages) {
    if ((m.kind !== 'step.completed' && m.kind !== 'step.failed') || m.startedAt === undefined) continue;
    const ran = (Date.parse(m.at) - Date.parse(m.startedAt)) / 1000;
    if (Number.isFinite(ran) && ran >= 0) seconds.set(m.stepExecutionId.toLowerCase(), ran);
  }
  return seconds;
}
