/**
 * Every error sous raises carries a machine-readable `code`, says whether trying the
 * same thing again may succeed (`retryable`), and keeps what caused it in `cause`.
 */
export abstract class SousError extends Error {
  abstract readonly code: string;
  abstract readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The environment or an options object holds an invalid setting. */
export class ConfigInvalidError extends SousError {
  readonly code = 'SOUS_CONFIG_INVALID';
  readonly retryable = false;
}

/** An outbox message failed validation before anything was written. */
export class OutboxMessageInvalidError extends SousError {
  readonly code = 'SOUS_OUTBOX_MESSAGE_INVALID';
  readonly retryable = false;
}

/** The outbox writer was given a connection instead of a transaction. */
export class OutboxNotInTransactionError extends SousError {
  readonly code = 'SOUS_OUTBOX_NOT_IN_TRANSACTION';
  readonly retryable = false;
}

/** A Kafka record does not have the shape Debezium's outbox router produces. */
export class MalformedRecordError extends SousError {
  readonly code = 'SOUS_MALFORMED_RECORD';
  readonly retryable = false;
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  constructor(
    message: string,
    where: { topic: string; partition: number; offset: string },
    options?: { cause?: unknown },
  ) {
    super(`${message} (${where.topic}[${where.partition}]@${where.offset})`, options);
    this.topic = where.topic;
    this.partition = where.partition;
    this.offset = where.offset;
  }
}

/** Applying migrations failed; nothing past the last applied one ran. */
export class MigrationFailedError extends SousError {
  readonly code = 'SOUS_MIGRATION_FAILED';
  readonly retryable = false;
}

/** The broker refused the client's SASL credentials (wrong user, password or mechanism). */
export class KafkaAuthFailedError extends SousError {
  readonly code = 'SOUS_KAFKA_AUTH_FAILED';
  readonly retryable = false;
}

/** The TLS handshake with a broker failed (its certificate does not verify, or it does not speak TLS). */
export class KafkaTlsFailedError extends SousError {
  readonly code = 'SOUS_KAFKA_TLS_FAILED';
  readonly retryable = false;
}

/** PostgreSQL refused the credentials (wrong password, or no pg_hba entry lets this user in). */
export class PostgresAuthFailedError extends SousError {
  readonly code = 'SOUS_PG_AUTH_FAILED';
  readonly retryable = false;
}

/**
 * TLS with PostgreSQL failed: its certificate does not verify, it does not offer TLS, or
 * it requires TLS (hostssl only) of a client configured without it.
 */
export class PostgresTlsFailedError extends SousError {
  readonly code = 'SOUS_PG_TLS_FAILED';
  readonly retryable = false;
}
