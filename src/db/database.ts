import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { logger } from '../logger.js';
import type { Database } from './schema.js';

export interface DatabaseOptions {
  /** PostgreSQL connection string. */
  readonly connectionString: string;
  /** Connections in the pool. @default 10 */
  readonly poolSize?: number;
  /** Name shown in pg_stat_activity. @default 'sous' */
  readonly applicationName?: string;
}

/** A Kysely instance over a pg pool; `destroy()` it to close the pool. */
export function createDatabase(options: DatabaseOptions): Kysely<Database> {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.poolSize ?? 10,
    application_name: options.applicationName ?? 'sous',
  });
  // An idle pooled connection that dies (server restart, terminated backend) is
  // dropped from the pool and replaced on next use; without a listener it would crash
  // the process.
  pool.on('error', (error: Error & { code?: string }) => {
    logger.warn({ component: 'pg-pool', code: error.code, reason: error.message }, 'idle PostgreSQL connection lost');
  });
  // A connection checked out but between queries (inside a transaction) that dies emits
  // 'error' on its client, which would crash the process: the query in hand fails
  // instead, and the pool drops the broken client when it comes back.
  pool.on('connect', (client) => {
    client.on('error', (error: Error & { code?: string }) => {
      logger.warn({ component: 'pg-pool', code: error.code, reason: error.message }, 'PostgreSQL connection lost');
    });
  });
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
