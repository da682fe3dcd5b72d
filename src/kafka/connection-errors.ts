import { KafkaAuthFailedError, KafkaTlsFailedError, type SousError } from '../errors.js';

/*
 * kafkajs reports a refused SASL login and a failed TLS handshake as its own errors, the
 * TLS one wrapped in retries: they become coded sous errors here (kafkajs's names stay
 * inside src/kafka/). Neither is worth retrying: the settings must change.
 */

/** Node's codes of a certificate that does not verify, and OpenSSL's of a handshake that failed. */
const TLS_CODES =
  /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_[A-Z_]+|ERR_TLS_CERT_ALTNAME_INVALID|ERR_SSL_[A-Z_]+|EPROTO)$/;

function* chain(error: unknown): Generator<{ name?: unknown; code?: unknown; message?: unknown }> {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    const e = current as {
      name?: unknown;
      code?: unknown;
      message?: unknown;
      cause?: unknown;
      originalError?: unknown;
    };
    yield e;
    current = e.cause ?? e.originalError;
  }
}

/** A coded error when `error` (or what caused it) is a refused login or a failed TLS handshake with Kafka. */
export function kafkaConnectionFailure(error: unknown): SousError | undefined {
  if (error instanceof KafkaAuthFailedError || error instanceof KafkaTlsFailedError) return error;
  for (const e of chain(error)) {
    if (e.name === 'KafkaJSSASLAuthenticationError') {
      return new KafkaAuthFailedError(
        `Kafka refused the SASL login (${String(e.message)}): check SOUS_KAFKA_SASL_MECHANISM, SOUS_KAFKA_SASL_USERNAME and SOUS_KAFKA_SASL_PASSWORD`,
        { cause: error },
      );
    }
    // Only kafkajs's own connection error: a PostgreSQL certificate error has the same codes.
    if (
      typeof e.name === 'string' &&
      e.name.startsWith('KafkaJS') &&
      typeof e.code === 'string' &&
      TLS_CODES.test(e.code)
    ) {
      return new KafkaTlsFailedError(
        `TLS with the Kafka broker failed (${e.code}): check SOUS_KAFKA_SSL_CA_FILE (the CA that signed the broker's certificate) and that the broker listener speaks TLS`,
        { cause: error },
      );
    }
  }
  return undefined;
}
