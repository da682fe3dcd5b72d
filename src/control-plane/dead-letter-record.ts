import { newId } from '../uuid.js';
import type { KafkaMessage } from 'kafkajs';
import { itemKey } from '../engine/plan-index.js';
import { OUTBOX_HEADERS } from '../kafka/outbox-record.js';
import { DLT_HEADERS, stepCommandSchema } from '../protocol/messages.js';
import type { DeadLetterRow } from '../store/dead-letters.js';
import { isUuid } from '../uuid.js';

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
export const base64 = (value: Buffer): string => `base64:${value.toString('base64')}`;

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
    id: newId(),
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
