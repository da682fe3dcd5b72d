// Migrations in a database of this test's own, on the stack's PostgreSQL.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { createDatabase } from '../../src/db/database.js';
import { MIGRATIONS_FOLDER, migrate } from '../../src/db/migrate.js';
import type { Database } from '../../src/db/schema.js';
import { MigrationFailedError, OutboxNotInTransactionError } from '../../src/errors.js';
import { writeOutbox } from '../../src/outbox/write-outbox.js';
import { stackConfig, uniqueName } from '../helpers/stack.js';

const name = uniqueName('sous_test_migrations').replaceAll('-', '_');
const admin = new pg.Client({ host: '127.0.0.1', port: stackConfig.pgPort, user: 'postgres', database: 'postgres' });
const url = `postgres://${stackConfig.pgUser}@127.0.0.1:${stackConfig.pgPort}/${name}`;
const dbs: Kysely<Database>[] = [];
const open = () => {
  const db = createDatabase({ connectionString: url, poolSize: 2 });
  dbs.push(db);
  return db;
};

before(async () => {
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} OWNER ${pg.escapeIdentifier(stackConfig.pgUser)}`);
});
after(async () => {
  await Promise.all(dbs.map((db) => db.destroy()));
  await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  await admin.end();
});

/** Every numbered migration the project ships, by name. */
const shipped = readdirSync(MIGRATIONS_FOLDER)
  .filter((f) => /^\d{4}_.+\.sql$/.test(f))
  .map((f) => f.replace(/\.sql$/, ''))
  .sort();

describe('migrations', () => {
  it('applies each migration once when two processes migrate at the same time', async () => {
    const [a, b] = await Promise.all([migrate(open()), migrate(open())]);
    assert.ok(shipped.length >= 3 && shipped[0] === '0001_outbox');
    assert.deepEqual([...a, ...b].sort(), shipped);
    assert.deepEqual(await migrate(open()), [], 'a third run has nothing to do');
    const db = open();
    const applied = await sql<{ name: string }>`SELECT name FROM sous.migration ORDER BY name`.execute(db);
    assert.deepEqual(
      applied.rows.map((r) => r.name),
      shipped,
    );
    const publication = await sql<{ pubinsert: boolean; pubdelete: boolean }>`
      SELECT pubinsert, pubdelete FROM pg_publication WHERE pubname = 'sous_outbox'`.execute(db);
    assert.deepEqual(publication.rows, [{ pubinsert: true, pubdelete: false }], 'only inserts are published');
  });

  it('rejects a row naming an invalid topic at the database too', async () => {
    const db = open();
    await assert.rejects(
      sql`INSERT INTO sous.outbox (id, aggregate_type, aggregate_id, event_type, topic, payload)
          VALUES (gen_random_uuid(), 't', 'k', 'e', 'no spaces allowed', '{}')`.execute(db),
      /outbox_topic_check/,
    );
  });

  it('refuses to write the outbox outside a transaction', async () => {
    const db = open();
    await assert.rejects(
      // The type system already forbids this; the runtime check guards JavaScript callers.
      writeOutbox(db as unknown as Parameters<typeof writeOutbox>[0], [
        { topic: 't', key: 'k', aggregateType: 'a', eventType: 'e', payload: {} },
      ]),
      OutboxNotInTransactionError,
    );
  });

  it('applies a failing migration not at all, and names it', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'sous-migrations-'));
    writeFileSync(join(folder, '0001_ok.sql'), 'CREATE TABLE sous.first_half (id int);');
    writeFileSync(
      join(folder, '0002_broken.sql'),
      'CREATE TABLE sous.second_half (id int); SELECT * FROM no_such_table;',
    );
    const scratch = uniqueName('sous_test_broken').replaceAll('-', '_');
    await admin.query(
      `CREATE DATABASE ${pg.escapeIdentifier(scratch)} OWNER ${pg.escapeIdentifier(stackConfig.pgUser)}`,
    );
    const db = createDatabase({ connectionString: url.replace(name, scratch), poolSize: 1 });
    try {
      await assert.rejects(
        migrate(db, folder),
        (e: unknown) =>
          e instanceof MigrationFailedError && /0002_broken/.test(e.message) && /no_such_table/.test(e.message),
      );
      const tables = await sql<{
        t: string;
      }>`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'sous' AND tablename LIKE '%_half'`.execute(db);
      assert.deepEqual(tables.rows, [], 'the whole run was rolled back');
    } finally {
      await db.destroy();
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(scratch)} WITH (FORCE)`);
    }
  });

  it('refuses a migration file that is not named NNNN_name.sql', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'sous-migrations-'));
    writeFileSync(join(folder, 'add-things.sql'), 'SELECT 1;');
    await assert.rejects(migrate(open(), folder), /add-things\.sql does not match NNNN_name\.sql/);
  });
});
