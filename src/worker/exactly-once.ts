import { readFile } from 'node:fs/promises';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { StepContext } from './context.js';

const INSTALL_SQL = new URL('./sql/exactly-once.sql', import.meta.url);

/** Creates the processing-log table in the service's database; safe to run again. */
export async function installExactlyOnce<DB>(db: Kysely<DB>): Promise<void> {
  // Serialised: two workers starting at once must not race on CREATE IF NOT EXISTS.
  await db.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(hashtextextended('sous_worker.install', 0))`.execute(trx);
    await sql.raw(await readFile(INSTALL_SQL, 'utf8')).execute(trx);
  });
}

/**
 * Applies a handler's side effect exactly once against the service's own PostgreSQL:
 * the effect and a processing-log row keyed by the step's idempotency key commit in one
 * transaction. A redelivered or retried command finds the row and gets the first
 * output back without running the effect again; concurrent duplicates wait on a lock.
 */
export async function withExactlyOnce<DB, O>(
  db: Kysely<DB>,
  context: Pick<StepContext, 'idempotencyKey'>,
  effect: (trx: Transaction<DB>) => Promise<O>,
): Promise<O> {
  return db.transaction().execute(async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(hashtextextended(${context.idempotencyKey}, 0))`.execute(trx);
    const done = await sql<{ output: O }>`
      SELECT output FROM sous_worker.processed_command WHERE idempotency_key = ${context.idempotencyKey}`.execute(trx);
    const previous = done.rows[0];
    if (previous !== undefined) return previous.output;
    const output = await effect(trx);
    await sql`
      INSERT INTO sous_worker.processed_command (idempotency_key, output)
      VALUES (${context.idempotencyKey}, ${JSON.stringify(output ?? null)}::jsonb)`.execute(trx);
    return output;
  });
}
