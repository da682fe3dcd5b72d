import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KafkaMessage } from 'kafkajs';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { isDataException } from '../db/sqlstate.js';
import { SousError } from '../errors.js';
import type { Kafka } from '../kafka/kafka-client.js';
import { OUTBOX_HEADERS } from '../kafka/outbox-record.js';
import { runSupervisedConsumer, type SupervisedConsumer } from '../kafka/supervised-consumer.js';
import type { Logger } from '../logger.js';
import { writeOutbox } from '../outbox/write-outbox.js';
import { DLT_HEADERS, stepCommandSchema } from '../protocol/messages.js';
import { itemKey } from '../engine/plan-index.js';
import { runDecision, type DecisionEnvironment } from './run-decision.js';
import { isUuid } from '../uuid.js';

/** The dead letter cannot be reprocessed as it is (not JSON, already resolved, unknown). */
export class DeadLetterNotReprocessableError extends SousError {
  readonly code = 'SOUS_DEAD_LETTER_NOT_REPROCESSABLE';
  readonly retryable = false;
}

/** A dead letter as stored in sous.dead_letter. */
export interface DeadLetterRow {
  readonly id: string;
  readonly dlt_topic: string;
  readonly dlt_partition: number;
  readonly dlt_offset: string;
  readonly original_topic: string;
  readonly original_partition: number | null;
  readonly original_offset: string | null;
  readonly message_key: string | null;
  readonly headers: Record<string, string>;
  readonly payload: unknown;
  readonly payload_text: string | null;
  readonly error_class: string;
  readonly error_code: string;
  readonly error_message: string;
  readonly error_stack: string | null;
  readonly consumer_group: string | null;
  readonly attempts: number | null;
  readonly failed_at: string | null;
  readonly capability: string | null;
  readonly execution_id: string | null;
  readonly step_key: string | null;
  readonly step_execution_id: string | null;
  readonly idempotency_key: string | null;
  readonly status: 'pending' | 'reprocessed' | 'discarded';
}

/** An integer column's value (int4), or null when the header is not one. */
const intOrNull = (text: string | undefined): number | null => {
  if (text === undefined || !/^\d{1,10}$/.test(text)) return null;
  const n = Number(text);
  return n <= 2_147_483_647 ? n : null;
};

/** A bigint column's value (as text), or null when the header is not one. */
const bigintOrNull = (text: string | undefined): string | null =>
  text !== undefined && /^\d{1,18}$/.test(text) ? text : null;

/** A timestamptz column's value, or null when the header is not an ISO instant. */
const instantOrNull = (text: string | undefined): string | null =>
  text !== undefined && /^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})$/.test(text) && !Number.isNaN(Date.parse(text))
    ? text
    : null;

/** PostgreSQL text (and jsonb strings) cannot hold NUL: it becomes U+FFFD. */
const storable = (text: string): string => text.replaceAll('\u0000', '\uFFFD');
const storableOrNull = (text: string | undefined): string | null => (text === undefined ? null : storable(text));
const base64 = (value: Buffer): string => `base64:${value.toString('base64')}`;

/**
 * The row of one record read from a `<topic>.DLT` topic: where it came from and why it
 * failed (from the DLT headers), its value (JSON when it parses), and, when the value is
 * a step command, which execution and step it belongs to.
 */
export function deadLetterRow(topic: string, partition: number, message: KafkaMessage): Omit<DeadLetterRow, 'status'> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value === undefined) continue;
    headers[storable(name)] = storable((Array.isArray(value) ? value.map(String).join(',') : value).toString());
  }
  const text = message.value?.toString('utf8') ?? null;
  let payload: unknown = null;
  // Text PostgreSQL cannot store as it is (it holds NUL) is kept whole, in base64.
  let payloadText: string | null =
    text === null || message.value === null ? null : text.includes('\u0000') ? base64(message.value) : text;
  if (text !== null) {
    try {
      payload = JSON.parse(text) as unknown;
      payloadText = null;
    } catch {
      payload = null;
    }
  }
  const originalTopic = headers[DLT_HEADERS.originalTopic] ?? topic.replace(/\.DLT$/, '');
  const command = stepCommandSchema.safeParse(payload);
  const capability = originalTopic.startsWith('sous.cmd.') ? originalTopic.slice('sous.cmd.'.length) : null;
  const executionId = command.success
    ? command.data.executionId
    : typeof (payload as { executionId?: unknown } | null)?.executionId === 'string' &&
        isUuid((payload as { executionId: string }).executionId)
      ? (payload as { executionId: string }).executionId
      : null;
  return {
    id: randomUUID(),
    dlt_topic: topic,
    dlt_partition: partition,
    dlt_offset: message.offset,
    original_topic: originalTopic,
    original_partition: intOrNull(headers[DLT_HEADERS.originalPartition]),
    original_offset: bigintOrNull(headers[DLT_HEADERS.originalOffset]),
    message_key: storableOrNull(message.key?.toString('utf8')),
    headers,
    payload,
    payload_text: payloadText,
    error_class: headers[DLT_HEADERS.errorClass] ?? 'Unknown',
    error_code: headers[DLT_HEADERS.errorCode] ?? 'unknown',
    error_message: headers[DLT_HEADERS.errorMessage] ?? '(no message)',
    error_stack: headers[DLT_HEADERS.errorStack] ?? null,
    consumer_group: headers[DLT_HEADERS.consumerGroup] ?? null,
    attempts: intOrNull(headers[DLT_HEADERS.attempts]),
    failed_at: instantOrNull(headers[DLT_HEADERS.failedAt]),
    capability: command.success ? storable(command.data.capability) : capability,
    execution_id: executionId,
    step_key: command.success
      ? storable(
          command.data.itemIndex === undefined
            ? command.data.stepId
            : itemKey(command.data.stepId, command.data.itemIndex),
        )
      : null,
    step_execution_id: command.success ? command.data.stepExecutionId : null,
    idempotency_key:
      headers[OUTBOX_HEADERS.idempotencyKey] ?? (command.success ? storable(command.data.idempotencyKey) : null),
  };
}

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

async function insertDeadLetter(db: Kysely<Database>, row: Omit<DeadLetterRow, 'status'>): Promise<boolean> {
  const { rows } = await sql`
    INSERT INTO sous.dead_letter (id, dlt_topic, dlt_partition, dlt_offset, original_topic, original_partition,
      original_offset, message_key, headers, payload, payload_text, error_class, error_code, error_message, error_stack,
      consumer_group, attempts, failed_at, capability, execution_id, step_key, step_execution_id, idempotency_key)
    VALUES (${row.id}, ${row.dlt_topic}, ${row.dlt_partition}, ${row.dlt_offset}, ${row.original_topic},
      ${row.original_partition}, ${row.original_offset}, ${row.message_key}, ${JSON.stringify(row.headers)}::jsonb,
      ${JSON.stringify(row.payload)}::jsonb, ${row.payload_text}, ${row.error_class}, ${row.error_code},
      ${row.error_message}, ${row.error_stack}, ${row.consumer_group}, ${row.attempts}, ${row.failed_at},
      ${row.capability}, ${row.execution_id}, ${row.step_key}, ${row.step_execution_id}, ${row.idempotency_key})
    ON CONFLICT (dlt_topic, dlt_partition, dlt_offset) DO NOTHING RETURNING 1`.execute(db);
  return rows.length > 0;
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

/** Which dead letters an action applies to: explicit ids, or a filter over pending ones. */
export interface DeadLetterSelection {
  readonly ids?: readonly string[];
  readonly capability?: string;
  readonly errorCode?: string;
  readonly originalTopic?: string;
  readonly executionId?: string;
}

/**
 * The pending dead letters selected. Explicit ids must all name pending letters, or the
 * action is refused whole (listing the ids at fault) before anything changes.
 */
async function selectIds(db: Kysely<Database>, selection: DeadLetterSelection): Promise<string[]> {
  if (selection.ids !== undefined) {
    const malformed = selection.ids.filter((id) => !isUuid(id));
    if (malformed.length > 0) {
      throw new DeadLetterNotReprocessableError(`not dead-letter ids (UUIDs expected): ${malformed.join(', ')}`);
    }
    const { rows } = await sql<{ id: string; status: string }>`
      SELECT id, status FROM sous.dead_letter
      WHERE id IN (SELECT jsonb_array_elements_text(${JSON.stringify(selection.ids)}::jsonb)::uuid)`.execute(db);
    const found = new Map(rows.map((r) => [r.id, r.status]));
    const problems = selection.ids.flatMap((id) => {
      const status = found.get(id.toLowerCase());
      if (status === undefined) return [`${id}: no such dead letter`];
      return status === 'pending' ? [] : [`${id}: already ${status}`];
    });
    if (problems.length > 0) throw new DeadLetterNotReprocessableError(problems.join('; '));
    return selection.ids.map((id) => id.toLowerCase());
  }
  const { rows } = await sql<{ id: string }>`
    SELECT id FROM sous.dead_letter
    WHERE status = 'pending'
      AND (${selection.capability ?? null}::text IS NULL OR capability = ${selection.capability ?? null})
      AND (${selection.errorCode ?? null}::text IS NULL OR error_code = ${selection.errorCode ?? null})
      AND (${selection.originalTopic ?? null}::text IS NULL OR original_topic = ${selection.originalTopic ?? null})
      AND (${selection.executionId ?? null}::uuid IS NULL OR execution_id = ${selection.executionId ?? null})
    ORDER BY ingested_at, dlt_offset`.execute(db);
  return rows.map((r) => r.id);
}

export interface ReprocessOutcome {
  readonly deadLetterId: string;
  /** The outbox message that carries the record again. */
  readonly messageId: string;
  /** The dead-lettered step was waiting for this and is in flight again. */
  readonly stepRequeued: boolean;
}

/**
 * Publishes dead letters again through the outbox, to their original topic with their
 * original key and idempotency key (so an exactly-once handler still applies its effect
 * once), optionally with a replacement payload; a parked step goes back in flight in
 * the same transaction. Each letter is its own transaction; a letter already resolved
 * is refused, so reprocessing twice publishes once.
 */
export async function reprocessDeadLetters(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  selection: DeadLetterSelection,
  actor: string,
  replacementPayload?: unknown,
): Promise<ReprocessOutcome[]> {
  const ids = await selectIds(db, selection);
  const outcomes: ReprocessOutcome[] = [];
  for (const id of ids) {
    outcomes.push(
      await db.transaction().execute(async (trx) => {
        const { rows } = await sql<DeadLetterRow>`
          SELECT * FROM sous.dead_letter WHERE id = ${id} FOR UPDATE`.execute(trx);
        const letter = rows[0];
        if (letter === undefined) throw new DeadLetterNotReprocessableError(`no dead letter ${id}`);
        if (letter.status !== 'pending') {
          throw new DeadLetterNotReprocessableError(`dead letter ${id} is already ${letter.status}`);
        }
        const payload = replacementPayload ?? letter.payload;
        if (payload === null || payload === undefined) {
          throw new DeadLetterNotReprocessableError(
            `dead letter ${id} holds no JSON value (${JSON.stringify((letter.payload_text ?? '').slice(0, 40))}…): give a replacement payload`,
          );
        }
        const messageId = randomUUID();
        const headers = letter.headers;
        await writeOutbox(trx, [
          {
            id: messageId,
            topic: letter.original_topic,
            key: letter.message_key ?? letter.execution_id ?? id,
            aggregateType: 'dead-letter',
            eventType: headers[OUTBOX_HEADERS.eventType] ?? 'reprocessed',
            payload,
            ...(headers[OUTBOX_HEADERS.traceparent] === undefined
              ? {}
              : { traceparent: headers[OUTBOX_HEADERS.traceparent] }),
            ...(headers[OUTBOX_HEADERS.correlationId] === undefined
              ? {}
              : { correlationId: headers[OUTBOX_HEADERS.correlationId] }),
            ...(letter.idempotency_key === null ? {} : { idempotencyKey: letter.idempotency_key }),
            headers: { 'sous-reprocessed-dead-letter': id },
          },
        ]);
        let stepRequeued = false;
        const command = stepCommandSchema.safeParse(payload);
        if (command.success) {
          const exists = await sql`SELECT 1 FROM sous.execution WHERE id = ${command.data.executionId}`.execute(trx);
          if (exists.rows.length > 0) {
            const decision = await runDecision(trx, env, command.data.executionId, {
              kind: 'requeue',
              stepExecutionId: command.data.stepExecutionId,
            });
            stepRequeued = decision.events.some((e) => e.type === 'StepRequeued');
          }
        }
        const outcome = { messageId, stepRequeued, payloadReplaced: replacementPayload !== undefined };
        await sql`
          UPDATE sous.dead_letter SET status = 'reprocessed', resolved_at = now(), resolved_by = ${actor},
            reprocess_count = reprocess_count + 1, outcome = ${JSON.stringify(outcome)}::jsonb
          WHERE id = ${id}`.execute(trx);
        return { deadLetterId: id, messageId, stepRequeued };
      }),
    );
  }
  return outcomes;
}

/** Marks dead letters as dealt with, without publishing anything. */
export async function discardDeadLetters(
  db: Kysely<Database>,
  selection: DeadLetterSelection,
  actor: string,
): Promise<string[]> {
  const ids = await selectIds(db, selection);
  if (ids.length === 0) return [];
  const { rows } = await sql<{ id: string }>`
    UPDATE sous.dead_letter SET status = 'discarded', resolved_at = now(), resolved_by = ${actor},
      outcome = '{"discarded": true}'::jsonb
    WHERE id IN (SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)::uuid) AND status = 'pending'
    RETURNING id`.execute(db);
  return rows.map((r) => r.id);
}
