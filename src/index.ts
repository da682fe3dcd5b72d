// The public surface of sous, exported by name.
export {
  SousError,
  ConfigInvalidError,
  OutboxMessageInvalidError,
  OutboxNotInTransactionError,
  MalformedRecordError,
  MigrationFailedError,
} from './errors.js';
export { createDatabase, type DatabaseOptions } from './db/database.js';
export { migrate, SqlFileMigrationProvider, MIGRATIONS_FOLDER } from './db/migrate.js';
export type { Database, OutboxTable } from './db/schema.js';
export {
  writeOutbox,
  toOutboxRows,
  DEFAULT_MAX_PAYLOAD_BYTES,
  type OutboxRow,
  type WriteOutboxOptions,
} from './outbox/write-outbox.js';
export type { OutboxMessage } from './outbox/outbox-message.js';
export { createKafka, type KafkaClientOptions } from './kafka/kafka-client.js';
export { decodeOutboxRecord, OUTBOX_HEADERS, type OutboxRecord } from './kafka/outbox-record.js';
export { runOutboxConsumer, type OutboxConsumer, type OutboxConsumerOptions } from './kafka/outbox-consumer.js';
export { ensureTopics, type EnsureTopicsOptions } from './kafka/topics.js';
