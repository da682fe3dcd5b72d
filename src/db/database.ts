import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
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
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
