import { PostgresAuthFailedError, PostgresTlsFailedError, type SousError } from '../errors.js';

/*
 * A refused login or failed TLS with PostgreSQL, as a coded error naming the settings to
 * check. pg gives SQLSTATE 28P01/28000 for the login and Node's TLS codes for certificates.
 */

const CERT_CODES =
  /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_[A-Z_]+|ERR_TLS_CERT_ALTNAME_INVALID)$/;

export function postgresConnectionFailure(error: unknown): SousError | undefined {
  if (error instanceof PostgresAuthFailedError || error instanceof PostgresTlsFailedError) return error;
  let current: unknown = error;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth++) {
    const e = current as { code?: unknown; message?: unknown; cause?: unknown };
    const message = typeof e.message === 'string' ? e.message : '';
    if (typeof e.code === 'string' && CERT_CODES.test(e.code)) {
      return new PostgresTlsFailedError(
        `PostgreSQL's certificate does not verify (${e.code}): check SOUS_PG_SSL_CA_FILE or sslrootcert in SOUS_DATABASE_URL`,
        { cause: error },
      );
    }
    if (message === 'The server does not support SSL connections') {
      return new PostgresTlsFailedError(
        'PostgreSQL does not offer TLS: turn ssl on in the server or set SOUS_PG_SSL_MODE=disable',
        { cause: error },
      );
    }
    // pg_hba has hostssl lines only: the server refuses a client without TLS.
    if (e.code === '28000' && /no encryption/.test(message)) {
      return new PostgresTlsFailedError(
        `PostgreSQL requires TLS (${message}): set SOUS_PG_SSL_MODE (verify-full with SOUS_PG_SSL_CA_FILE) or sslmode in SOUS_DATABASE_URL`,
        { cause: error },
      );
    }
    if (e.code === '28P01' || e.code === '28000') {
      return new PostgresAuthFailedError(
        `PostgreSQL refused the login (${e.code}: ${message}): check the user and password`,
        {
          cause: error,
        },
      );
    }
    current = e.cause;
  }
  return undefined;
}
