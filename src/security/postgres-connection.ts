import type pg from 'pg';
import type { PostgresTlsOptions } from './config.js';

/*
 * Kept apart from src/db (Kysely, migrations) so the worker SDK's payload store uses it
 * without shipping the control plane's database layer in @sous/worker.
 */

/** How a process reaches PostgreSQL: the connection string, and TLS and a password given apart from it. */
export interface PostgresConnection {
  /** PostgreSQL connection string (its sslmode, sslrootcert, sslcert and sslkey are honoured). */
  readonly connectionString: string;
  /**
   * TLS (loadSecurityConfig reads it from SOUS_PG_SSL_*). A connection string's own
   * `sslmode` takes precedence over it. @default the connection string decides
   */
  readonly tls?: PostgresTlsOptions;
  /** Password, when it is not in the connection string (SOUS_DATABASE_PASSWORD_FILE). @default none */
  readonly password?: string;
}

/** pg's ssl option from sous's TLS settings (libpq's meaning of each mode). */
function pgSsl(tls: PostgresTlsOptions): pg.ClientConfig['ssl'] {
  if (tls.mode === 'disable') return false;
  const files = {
    ...(tls.ca === undefined ? {} : { ca: tls.ca }),
    ...(tls.cert === undefined ? {} : { cert: tls.cert }),
    ...(tls.key === undefined ? {} : { key: tls.key }),
  };
  if (tls.mode === 'require') return { ...files, rejectUnauthorized: false };
  // verify-ca: the chain is checked, the host name is not.
  if (tls.mode === 'verify-ca') return { ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined };
  return { ...files, rejectUnauthorized: true };
}

/**
 * The password put into the URL: pg lets a connection string's (empty) password override a
 * `password` setting. The URL goes to pg only, never to a log (see redactConnectionString).
 */
function withPassword(connectionString: string, password: string): string {
  try {
    const url = new URL(connectionString);
    url.password = encodeURIComponent(password);
    return url.toString();
  } catch {
    return connectionString;
  }
}

/** The pg client settings of a connection: every pool and client of sous is made from these. */
export function pgConnectionConfig(connection: PostgresConnection): pg.ClientConfig {
  return {
    connectionString:
      connection.password === undefined
        ? connection.connectionString
        : withPassword(connection.connectionString, connection.password),
    ...(connection.tls === undefined ? {} : { ssl: pgSsl(connection.tls) }),
    ...(connection.password === undefined ? {} : { password: connection.password }),
  };
}
