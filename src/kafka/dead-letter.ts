import type { KafkaMessage } from 'kafkajs';
import { deadLetterTopic, DLT_HEADERS } from '../protocol/messages.js';
import type { RecordProducer } from './producer.js';

export interface DeadLetter {
  /** Where the record was read. */
  readonly topic: string;
  readonly partition: number;
  readonly message: KafkaMessage;
  readonly error: Error & { code?: string };
  readonly consumerGroup: string;
  readonly attempts: number;
}

/**
 * Sends a record that cannot be processed to `<topic>.DLT`: the original key, value and
 * headers, plus where it came from and why it failed, so it can be inspected and
 * reprocessed. Nothing is dropped silently.
 */
export async function publishDeadLetter(producer: RecordProducer, letter: DeadLetter): Promise<void> {
  const { message, error } = letter;
  await producer.send([
    {
      topic: deadLetterTopic(letter.topic),
      key: message.key,
      value: message.value,
      headers: {
        // kafkajs cannot send a null header value (Debezium writes them for null columns).
        ...Object.fromEntries(Object.entries(message.headers ?? {}).filter(([, v]) => (v as unknown) != null)),
        [DLT_HEADERS.originalTopic]: letter.topic,
        [DLT_HEADERS.originalPartition]: String(letter.partition),
        [DLT_HEADERS.originalOffset]: message.offset,
        [DLT_HEADERS.errorClass]: error.name,
        [DLT_HEADERS.errorCode]: error.code ?? 'unknown',
        [DLT_HEADERS.errorMessage]: error.message,
        [DLT_HEADERS.errorStack]: error.stack ?? '',
        [DLT_HEADERS.consumerGroup]: letter.consumerGroup,
        [DLT_HEADERS.attempts]: String(letter.attempts),
        [DLT_HEADERS.failedAt]: new Date().toISOString(),
      },
    },
  ]);
}
