import { createHash } from 'node:crypto';
import { Kysely, PostgresDialect, type KyselyConfig, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';
import { logger } from '../logger.js';
import { pgConnectionConfig, type PostgresConnection } from '../security/postgres-connection.js';
import type { Database } from './schema.js';

export { pgConnectionConfig, type PostgresConnection };

export interface DatabaseOptions extends PostgresConnection {
  /** Connections in the pool. @default 10 */
  readonly poolSize?: number;
  /** Name shown in pg_stat_activity. @default 'sous' */
  readonly applicationName?: string;
  /** Kysely's query log (e.g. to count statements). @default none */
  readonly log?: KyselyConfig['log'];
}

/**
 * Statements that open with `/* sous:<name> *\/` are sent as named (prepared) statements:
 * each connection parses and plans them once and afterwards only binds values. The hot
 * statements of src/store carry the marker; everything else stays unnamed, so a query
 * built with a varying text never fills a connection with prepared statements.
 */
export const PREPARED_MARKER = /^\/\* sous:([A-Za-z]+) \*\//;

const statementNames = new Map<string, string>();

/** A stable name per statement text (the same name with another text would be refused). */
function statementName(label: string, text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `sous_${label}_${createHash('sha1').update(text).digest('hex').slice(0, 10)}`;
    statementNames.set(text, name);
  }
  return name;
}

/** The pg pool as Kysely sees it, with marked statements sent as named ones. */
function preparingPool(pool: pg.Pool): PostgresPool {
  return {
    async connect(): Promise<PostgresPoolClient> {
      const client = await pool.connect();
      const query = (textOrCursor: unknown, parameters?: readonly unknown[]): unknown => {
        if (typeof textOrCursor === 'string') {
          const label = PREPARED_MARKER.exec(textOrCursor)?.[1];
          const values = [...(parameters ?? [])];
          return label === undefined
            ? client.query(textOrCursor, values)
            : client.query({ name: statementName(label, textOrCursor), text: textOrCursor, values });
        }
        // A cursor (Kysely's stream()): pg runs it as it is.
        return client.query(textOrCursor as pg.Submittable);
      };
      return { query: query as PostgresPoolClient['query'], release: () => client.release() };
    },
    end: () => pool.end(),
    // Kysely opens a control connection from these to cancel a running query.
    Client: pg.Client,
    options: pool.options,
  };
}

/** A Kysely instance over a pg pool; `destroy()` it to close the pool. */
export function createDatabase(options: DatabaseOptions): Kysely<Database> {
  const pool = new pg.Pool({
    ...pgConnectionConfig(options),
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
  return new Kysely<Database>({
    dialect: new PostgresDialect({ pool: preparingPool(pool) }),
    ...(options.log === undefined ? {} : { log: options.log }),
  });
}
