import { readFile } from 'node:fs/promises';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { StepContext } from './context.js';
import { jsonText } from './json-text.js';

const INSTALL_SQL = new URL('./sql/exactly-once.sql', import.meta.url);

/**
 * Creates schema `sous_worker` and its processing-log table
 * `processed_command (idempotency_key text primary key, output jsonb, processed_at timestamptz)`
 * in the service's own database. Safe to run again, and from several processes at once.
 */
export async function installExactlyOnce<DB>(db: Kysely<DB>): Promise<void> {
  const ddl = await readFile(INSTALL_SQL, 'utf8');
  // Serialised: two instances starting at once must not race on CREATE ... IF NOT EXISTS.
  await db.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(hashtextextended('sous_worker.install', 0))`.execute(trx);
    await sql.raw(ddl).execute(trx);
  });
}

/**
 * Applies a handler's side effect exactly once against the service's own PostgreSQL,
 * however often its command is delivered or retried: in one transaction, the step's
 * idempotency key is claimed in `sous_worker.processed_command`, the effect runs on that
 * transaction, and the output is stored with the claim. When the key was claimed
 * before, the stored output comes back and the effect does not run.
 *
 * Concurrent duplicates are safe: the claim is an `INSERT ... ON CONFLICT DO NOTHING`,
 * so a second transaction waits on the first one's uncommitted row, then finds the key
 * taken (first committed) or claims it itself (first rolled back). The transaction runs
 * at READ COMMITTED so that the re-read sees the row that won.
 *
 * The output is stored as JSON and the caller always gets the JSON form back (dates as
 * strings, `undefined` as null), the first time as on every repeat. An effect that
 * throws rolls back with its claim: the next delivery runs it again.
 */
export async function withExactlyOnce<DB, O>(
  db: Kysely<DB>,
  context: Pick<StepContext, 'idempotencyKey'>,
  effect: (trx: Transaction<DB>) => Promise<O>,
): Promise<O> {
  const key = context.idempotencyKey;
  return db
    .transaction()
    .setIsolationLevel('read committed')
    .execute(async (trx) => {
      const claimed = await sql<{ idempotency_key: string }>`
        INSERT INTO sous_worker.processed_command (idempotency_key) VALUES (${key})
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING idempotency_key`.execute(trx);
      if (claimed.rows.length === 0) {
        const done = await sql<{ output: unknown }>`
          SELECT output FROM sous_worker.processed_command WHERE idempotency_key = ${key}`.execute(trx);
        return (done.rows[0]?.output ?? null) as O;
      }
      const output = await effect(trx);
      const stored = jsonText(output) ?? 'null';
      await sql`
        UPDATE sous_worker.processed_command SET output = ${stored}::jsonb, processed_at = now()
        WHERE idempotency_key = ${key}`.execute(trx);
      return JSON.parse(stored) as O;
    });
}
