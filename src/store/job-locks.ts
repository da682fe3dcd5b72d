import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/**
 * The session advisory lock a live job pool holds (src/control-plane/job-pool-presence.ts):
 * PostgreSQL releases it when the pool's process dies, however it dies.
 */
export const HOLD_JOB_POOL_PRESENCE_SQL = `SELECT pg_advisory_lock(hashtextextended('sous.job-pool:' || $1::text, 0))`;

/**
 * Hands on the jobs of dead pools in one statement: a pool that has held a job lock for
 * longer than `staleAfterSeconds` and whose presence lock is free (the xact-level try
 * conflicts with a live pool's session lock, and is released when the statement ends) is
 * dead, and graphile-worker's force_unlock_workers frees its jobs and queues for others.
 * Returns the dead pools' ids.
 */
export async function unlockJobsOfDeadPools(db: Kysely<Database>, staleAfterSeconds: number): Promise<string[]> {
  const { rows } = await sql<{ pools: string[] }>`
    WITH dead AS (
      SELECT ARRAY(
        SELECT p.locked_by FROM (
          SELECT DISTINCT locked_by FROM graphile_worker.jobs
          WHERE locked_by IS NOT NULL AND locked_at < now() - make_interval(secs => ${staleAfterSeconds})
        ) AS p
        WHERE pg_try_advisory_xact_lock(hashtextextended('sous.job-pool:' || p.locked_by, 0))
      ) AS pools
    )
    SELECT pools, graphile_worker.force_unlock_workers(pools) FROM dead`.execute(db);
  return rows[0]?.pools ?? [];
}
