// A control plane SIGKILLed while it runs a timer job must not leave that job locked for
// graphile-worker's 4 hours: a job locked for a while by a pool whose presence lock is free
// is handed on; a live pool's job, or one locked a moment ago, is left alone.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { JobPoolPresence } from '../../src/control-plane/job-pool-presence.js';
import { logger } from '../../src/logger.js';
import { databaseUrl } from '../../src/stack/config.js';
import { unlockJobsOfDeadPools } from '../../src/store/job-locks.js';
import { stackConfig, testDatabase, uniqueName } from '../helpers/stack.js';

const db = testDatabase();
after(() => db.destroy());

/** A job of a task no process runs, locked by `pool` `ageSeconds` ago. */
async function lockedJob(pool: string, ageSeconds: number): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    SELECT id::text FROM graphile_worker.add_job(${uniqueName('sous_test_task').replaceAll('-', '_')}, '{}'::json)`.execute(
    db,
  );
  const id = rows[0]?.id;
  assert.ok(id !== undefined);
  // What a pool's get_job does, back-dated: the test stands in for a pool that took the job.
  await sql`UPDATE graphile_worker._private_jobs
    SET locked_by = ${pool}, locked_at = now() - make_interval(secs => ${ageSeconds}), attempts = 1
    WHERE id = ${id}::bigint`.execute(db);
  return id;
}

async function lockerOf(id: string): Promise<string | null> {
  const { rows } = await sql<{ locked_by: string | null }>`
    SELECT locked_by FROM graphile_worker._private_jobs WHERE id = ${id}::bigint`.execute(db);
  return rows[0]?.locked_by ?? null;
}

async function presenceHeld(pool: string): Promise<boolean> {
  const { rows } = await sql<{ held: boolean }>`
    SELECT count(*) > 0 AS held FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted
      AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(${`sous.job-pool:${pool}`}, 0)`.execute(db);
  return rows[0]?.held ?? false;
}

describe('timer jobs of dead control planes', () => {
  const jobs: string[] = [];
  after(async () => {
    await sql`DELETE FROM graphile_worker._private_jobs WHERE id = ANY(${jobs}::bigint[])`.execute(db);
  });

  it("hands on a dead pool's stale job, keeps a live pool's and a fresh one", async () => {
    const dead = uniqueName('pool-dead');
    const alive = uniqueName('pool-alive');
    const presence = new JobPoolPresence({ connectionString: databaseUrl(stackConfig) }, alive, logger);
    presence.start();
    try {
      for (let i = 0; !(await presenceHeld(alive)); i++) {
        assert.ok(i < 100, 'the live pool takes its presence lock');
        await sleep(50);
      }
      const deadStale = await lockedJob(dead, 60);
      const deadFresh = await lockedJob(`${dead}-fresh`, 0);
      const aliveStale = await lockedJob(alive, 60);
      jobs.push(deadStale, deadFresh, aliveStale);

      const handedOn = await unlockJobsOfDeadPools(db, 10);
      assert.ok(!handedOn.includes(alive), 'a live pool is never taken for dead');
      assert.equal(await lockerOf(deadStale), null, "the dead pool's stale job is free for another pool");
      assert.equal(
        await lockerOf(deadFresh),
        `${dead}-fresh`,
        'a job locked a moment ago is left (its pool may be starting)',
      );
      assert.equal(await lockerOf(aliveStale), alive, "the live pool's job stays locked, however long it runs");

      // The live pool dies: its lock goes with its session, and its job is handed on.
      await presence.stop();
      assert.equal(await presenceHeld(alive), false);
      await unlockJobsOfDeadPools(db, 10);
      assert.equal(await lockerOf(aliveStale), null);
    } finally {
      await presence.stop();
    }
  });

  it('takes the presence lock again when its connection is lost (PostgreSQL restarted)', async () => {
    const pool = uniqueName('pool-reconnect');
    const presence = new JobPoolPresence({ connectionString: databaseUrl(stackConfig) }, pool, logger, 200);
    presence.start();
    try {
      for (let i = 0; !(await presenceHeld(pool)); i++) {
        assert.ok(i < 100, 'the presence lock is taken');
        await sleep(50);
      }
      const job = await lockedJob(pool, 60);
      jobs.push(job);
      // The session holding the lock ends, as in a restart: the lock is gone for a moment.
      // Waited for (the timeout argument): the backend lists its lock until it has exited,
      // and a presence seen before that would be the old session's.
      await sql`SELECT pg_terminate_backend(l.pid, 10000) FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted
          AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(${`sous.job-pool:${pool}`}, 0)`.execute(
        db,
      );
      for (let i = 0; !(await presenceHeld(pool)); i++) {
        assert.ok(i < 200, 'the presence lock is taken again on a new connection');
        await sleep(50);
      }
      await unlockJobsOfDeadPools(db, 10);
      assert.equal(await lockerOf(job), pool, 'the pool is alive again: its job stays locked');
    } finally {
      await presence.stop();
    }
  });
});
