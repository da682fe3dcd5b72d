import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { publishDeadLetter } from '../kafka/dead-letter.js';
import type { Kafka } from '../kafka/kafka-client.js';
import { runOutboxConsumer, type OutboxConsumer } from '../kafka/outbox-consumer.js';
import type { OutboxRecord } from '../kafka/outbox-record.js';
import type { RecordProducer } from '../kafka/producer.js';
import { ensureTopics } from '../kafka/topics.js';
import type { Logger } from '../logger.js';
import { deadLetterTopic } from '../protocol/messages.js';
import { inboxAction, regionInboxTopic, stepKeyOf } from '../regions/region-inbox.js';
import { RELAY_HEADERS } from '../relay/routing.js';
import type { Route, StepNeeds } from '../shards/route.js';
import { insertOutboxRows, type OutboxRow } from '../store/outbox.js';
import { cancelInboundCommand, claimInboundCommand } from '../store/region-inbox.js';
import { insertWaitingCommands } from '../store/waiting-commands.js';
import { stepCancelMessage } from './command-message.js';
import { InboundRefusedError } from './errors.js';

export type InboundOutcome = 'dispatched' | 'held' | 'cancelled' | 'duplicate' | 'refused';

/**
 * Applies one record of this region's inbox in one transaction: the inbox row (keyed by
 * the attempt) with the command's outbox row, or its held command, or the cancel passed
 * on to the shards. A record seen before finds its inbox row and writes nothing, so the
 * relay, Kafka or a restart of this process delivering it again has no second effect; a
 * crash before the commit leaves nothing, and the record is read again.
 */
export async function applyInbound(
  db: Kysely<Database>,
  record: OutboxRecord,
  localRegion: string,
  route: (needs: StepNeeds) => Route,
): Promise<{ readonly outcome: InboundOutcome; readonly reason?: string }> {
  const action = inboxAction(record.payload, localRegion, route);
  const origin = record.headers[RELAY_HEADERS.relayedFrom] ?? 'unknown';
  if (action.kind === 'refuse') return { outcome: 'refused', reason: `${action.code}: ${action.reason}` };
  if (action.kind === 'cancel') {
    const { executionId, stepExecutionId, reason } = action.cancel;
    return db.transaction().execute(async (trx) => {
      const done = await cancelInboundCommand(trx, { id: stepExecutionId, executionId, originRegion: origin });
      if (!done.changed) return { outcome: 'duplicate' as const };
      // A held command was dropped above; one already sent may be running: its shard aborts it.
      if (!done.wasHeld)
        await insertOutboxRows<Database>(trx, [stepCancelMessage(executionId, stepExecutionId, reason)]);
      return { outcome: 'cancelled' as const };
    });
  }
  const { command } = action;
  const outbox: Omit<OutboxRow, 'topic'> = {
    id: command.stepExecutionId,
    aggregateType: record.aggregateType,
    key: record.key,
    eventType: record.eventType,
    payload: JSON.stringify(command),
    headers: '{}',
    traceparent: record.traceparent ?? null,
    correlationId: record.correlationId ?? null,
    idempotencyKey: record.idempotencyKey ?? command.idempotencyKey,
  };
  return db.transaction().execute(async (trx) => {
    const fresh = await claimInboundCommand(trx, {
      id: command.stepExecutionId,
      executionId: command.executionId,
      originRegion: command.replyVia?.region ?? origin,
      state: action.kind === 'dispatch' ? 'dispatched' : 'held',
    });
    if (!fresh) return { outcome: 'duplicate' as const };
    if (action.kind === 'dispatch') {
      await insertOutboxRows<Database>(trx, [{ ...outbox, topic: action.topic }]);
      return { outcome: 'dispatched' as const };
    }
    await insertWaitingCommands(trx, [
      {
        outbox,
        executionId: command.executionId,
        stepKey: stepKeyOf(command),
        capability: command.capability,
        region: localRegion,
        contract: command.contract ?? null,
        reasonCode: action.code,
        reason: action.reason,
        originRegion: command.replyVia?.region ?? origin,
      },
    ]);
    return { outcome: 'held' as const, reason: action.reason };
  });
}

export interface RegionInboxOptions {
  readonly kafka: Kafka;
  readonly db: Kysely<Database>;
  readonly producer: RecordProducer;
  readonly region: string;
  readonly groupId: string;
  readonly route: (needs: StepNeeds) => Route;
  /** Told of each record applied (metrics, the releaser). */
  readonly onApplied?: (outcome: InboundOutcome) => void;
  readonly log: Logger;
}

/**
 * Reads this region's inbox (its own consumer group, read_committed: the relay writes in
 * transactions) and applies each record; offsets are committed after the transaction, so
 * a crash in between reads the record again and the inbox row makes that a no-op. While
 * this process is down, the records wait in the topic (the group's lag).
 */
export async function runRegionInbox(options: RegionInboxOptions): Promise<OutboxConsumer> {
  const { kafka, db, region, log } = options;
  const topic = regionInboxTopic(region);
  await ensureTopics(kafka, [topic]);
  await ensureTopics(kafka, [deadLetterTopic(topic)], { partitions: 1 });
  const deadLetter = async (
    error: Error & { code?: string },
    message: Parameters<typeof publishDeadLetter>[1]['message'],
    partition: number,
  ) => {
    log.error({ reason: error.message, partition, offset: message.offset }, 'region inbox record dead-lettered');
    await publishDeadLetter(options.producer, {
      topic,
      partition,
      message,
      error,
      consumerGroup: options.groupId,
      attempts: 1,
    });
  };
  return runOutboxConsumer({
    kafka,
    groupId: options.groupId,
    topics: [topic],
    fromBeginning: true,
    handle: async (record, message) => {
      const applied = await applyInbound(db, record, region, options.route);
      if (applied.outcome === 'refused') {
        await deadLetter(new InboundRefusedError(applied.reason ?? 'refused'), message, record.partition);
      } else if (applied.outcome === 'held') {
        log.info({ id: record.id, reason: applied.reason }, 'command from another region held: no shard can take it');
      }
      options.onApplied?.(applied.outcome);
    },
    onMalformed: (error, message, where) => deadLetter(error, message, where.partition),
  });
}
