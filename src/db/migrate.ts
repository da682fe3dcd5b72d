import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Kysely, sql } from 'kysely';
import { type Migration, type MigrationProvider, Migrator } from 'kysely/migration';
import { runMigrations as runGraphileMigrations } from 'graphile-worker';
import { MigrationFailedError } from '../errors.js';
import { graphileLogger } from '../graphile-logger.js';
import pg from 'pg';
import { pgConnectionConfig, type PostgresConnection } from '../security/postgres-connection.js';

/** The folder of numbered `.sql` migrations shipped with sous. */
export const MIGRATIONS_FOLDER = resolve(import.meta.dirname, '..', '..', 'migrations');

const FILE_NAME = /^(\d{4})_[a-z0-9_]+\.sql$/;

/**
 * Reads `NNNN_name.sql` files as Kysely migrations. Files are append-only: a landed
 * file is never edited, a change is a new file.
 */
export class SqlFileMigrationProvider implements MigrationProvider {
  readonly #folder: string;
  constructor(folder: string = MIGRATIONS_FOLDER) {
    this.#folder = folder;
  }

  async getMigrations(): Promise<Record<string, Migration>> {
    const migrations: Record<string, Migration> = {};
    const files = (await readdir(this.#folder)).filter((f) => f.endsWith('.sql')).sort();
    for (const file of files) {
      if (!FILE_NAME.test(file)) {
        throw new MigrationFailedError(`migration file ${file} does not match NNNN_name.sql`);
      }
      const text = await readFile(join(this.#folder, file), 'utf8');
      // A whole file is one simple-protocol query, so it may hold many statements.
      migrations[file.replace(/\.sql$/, '')] = {
        up: async (db) => {
          await sql.raw(text).execute(db);
        },
      };
    }
    return migrations;
  }
}

/**
 * Applies pending migrations in order. Kysely's Migrator takes an advisory lock so two
 * processes starting at once apply each migration exactly once, and refuses to run when
 * an applied migration is missing from the folder or out of order.
 */
export async function migrate<DB>(db: Kysely<DB>, folder: string = MIGRATIONS_FOLDER): Promise<string[]> {
  // CREATE SCHEMA IF NOT EXISTS is not safe against a concurrent twin: serialise it.
  await db.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(hashtextextended('sous.migrate', 0))`.execute(trx);
    await sql`CREATE SCHEMA IF NOT EXISTS sous`.execute(trx);
  });
  const migrator = new Migrator({
    db,
    provider: new SqlFileMigrationProvider(folder),
    migrationTableSchema: 'sous',
    migrationTableName: 'migration',
    migrationLockTableName: 'migration_lock',
  });
  const { error, results = [] } = await migrator.migrateToLatest();
  const failed = results.find((r) => r.status === 'Error');
  if (error !== undefined || failed !== undefined) {
    throw new MigrationFailedError(
      `migration ${failed?.migrationName ?? '(setup)'} failed: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/**
 * Everything the control plane's database needs: sous's migrations, then
 * graphile-worker's own (its jobs are added inside sous transactions).
 */
export async function migrateAll<DB>(db: Kysely<DB>, connection: string | PostgresConnection): Promise<string[]> {
  const applied = await migrate(db);
  // graphile-worker connects with sous's pg settings (TLS, password), not a bare string.
  const pgPool = new pg.Pool({
    ...pgConnectionConfig(typeof connection === 'string' ? { connectionString: connection } : connection),
    max: 1,
  });
  // An idle connection lost while migrating surfaces as the migration's own error; without a
  // handler pg would throw it at the process (and graphile-worker warns that none is set).
  pgPool.on('error', () => undefined);
  pgPool.on('connect', (client) => client.on('error', () => undefined));
  try {
    await runGraphileMigrations({ pgPool, logger: graphileLogger });
  } finally {
    await pgPool.end();
  }
  return applied;
}
