// The DLT reprocessing job on the real stack, without the API: bounded batches, progress
// stored, and retry safety — a run resumed after a crash publishes no dead letter twice.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sql } from 'kysely';
import {
  deadLetterJobActor,
  resumeStaleDeadLetterJobs,
  runDeadLetterJobBatch,
  startDeadLetterJob,
} from '../../src/control-plane/dead-letter-job.js';
import {
  DeadLetterNotReprocessableError,
  deadLetterRow,
  discardDeadLetters,
  reprocessDeadLetters,
  storeDeadLetter,
} from '../../src/control-plane/dead-letters.js';
import { PlanCache } from '../../src/control-plane/plan-cache.js';
import { defaultDecisionEnvironment } from '../../src/control-plane/run-decision.js';
import { migrate } from '../../src/db/migrate.js';
import { selectDeadLetterJob } from '../../src/store/dead-letter-jobs.js';
import { collectUntil, testDatabase, testKafka, uniqueName } from '../helpers/stack.js';

const db = testDatabase();
const kafka = testKafka();
const env = defaultDecisionEnvironment(new PlanCache());
// A task no control plane runs: the test runs the batches itself, as a crash would leave them.
const task = uniqueName('test_unrun_task').replaceAll('-', '_');

after(async () => {
  // The queued graphile-worker jobs of the task nobody runs would stay forever.
  await sql`SELECT graphile_worker.remove_job(key) FROM graphile_worker.jobs WHERE task_identifier = ${task}`
    .execute(db)
    .catch(() => undefined);
  await db.destroy();
});

/** `n` pending dead letters whose original topic is `topic` (JSON values, not step commands). */
async function deadLetters(topic: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const row = deadLetterRow(`${topic}.DLT`, 0, {
      key: Buffer.from(`k${i}`),
      value: Buffer.from(JSON.stringify({ n: i })),
      offset: String(i),
      timestamp: String(Date.now()),
      attributes: 0,
      headers: {},
    });
    assert.equal(await storeDeadLetter(db, row), true);
    ids.push(row.id);
  }
  return ids;
}

describe('DLT reprocessing job', () => {
  it('resumes after a crash without publishing a dead letter twice, in bounded batches', async () => {
    await migrate(db);
    const topic = uniqueName('test.cli-job.orders');
    const ids = await deadLetters(topic, 5);
    const job = await startDeadLetterJob(db, {
      selection: { originalTopic: topic },
      actor: 'tester',
      batchSize: 2,
      task,
    });
    assert.equal(job.total, 5);
    assert.equal(job.state, 'queued');

    // A second job cannot take on letters the first holds, and changes nothing.
    await assert.rejects(
      startDeadLetterJob(db, { selection: { ids: [ids[0] ?? ''] }, actor: 'tester', task }),
      (error: unknown) =>
        error instanceof DeadLetterNotReprocessableError && /held by dead-letter job/.test(error.message),
    );
    const second = await startDeadLetterJob(db, { selection: { originalTopic: topic }, actor: 'tester', task });
    assert.equal(second.total, 0, 'a filter skips letters an unfinished job holds');
    assert.equal(second.state, 'completed');

    // What a crash between publishing the first letter and recording it leaves behind:
    // the letter is reprocessed (by the job's actor), its item still pending.
    await reprocessDeadLetters(db, env, { ids: [ids[0] ?? ''] }, deadLetterJobActor(job));
    // Meanwhile an operator discards another one: the job must not publish it.
    await discardDeadLetters(db, { ids: [ids[3] ?? ''] }, 'someone');

    const runs: number[] = [];
    for (;;) {
      const outcome = await runDeadLetterJobBatch(db, env, job.id);
      runs.push(outcome.handled);
      const progress = await selectDeadLetterJob(db, job.id);
      assert.ok(progress);
      assert.equal(
        progress.done + progress.failed,
        runs.reduce((a, b) => a + b, 0),
        'progress is stored per letter',
      );
      if (outcome.completed) break;
      assert.equal(progress.state, 'running');
      assert.ok(runs.length < 10, 'the job ends');
    }
    assert.deepEqual(runs, [2, 2, 1], 'each run handles one bounded batch');

    const done = await selectDeadLetterJob(db, job.id);
    assert.equal(done?.state, 'completed');
    assert.equal(done.total, 5);
    assert.equal(done.done, 4);
    assert.equal(done.failed, 1);
    assert.ok(done.finished_at !== null);

    const letters = await sql<{ id: string; status: string; reprocess_count: number; resolved_by: string }>`
      SELECT id, status, reprocess_count, resolved_by FROM sous.dead_letter
      WHERE id = ANY(${ids}::uuid[])`.execute(db);
    for (const letter of letters.rows) {
      if (letter.id === ids[3]) {
        assert.equal(letter.status, 'discarded');
        assert.equal(letter.reprocess_count, 0);
      } else {
        assert.equal(letter.status, 'reprocessed');
        assert.equal(letter.reprocess_count, 1, `dead letter ${letter.id} reprocessed once`);
        assert.equal(letter.resolved_by, `tester (dead-letter job ${job.id})`);
      }
    }
    const failures = await sql<{ dead_letter_id: string; error_code: string; error_message: string }>`
      SELECT dead_letter_id, error_code, error_message FROM sous.dead_letter_job_item
      WHERE job_id = ${job.id} AND status = 'failed'`.execute(db);
    assert.deepEqual(
      failures.rows.map((f) => [f.dead_letter_id, f.error_code]),
      [[ids[3], 'SOUS_DEAD_LETTER_NOT_REPROCESSABLE']],
    );
    assert.match(failures.rows[0]?.error_message ?? '', /already discarded/);

    // A duplicate run of a completed job does nothing.
    assert.deepEqual(await runDeadLetterJobBatch(db, env, job.id), { handled: 0, completed: true });

    // Kafka holds each of the four letters once, through the outbox and Debezium.
    const published = await collectUntil(kafka, [topic], (c) => c.records.length >= 4);
    const counts = new Map<string, number>();
    for (const r of published.records) {
      const id = r.headers['sous-reprocessed-dead-letter'] ?? '';
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    assert.deepEqual(
      [...counts.entries()].sort(),
      ids
        .filter((id) => id !== ids[3])
        .map((id) => [id, 1])
        .sort(),
    );
  });

  it('starts again a job whose progress stopped (its worker died)', async () => {
    const topic = uniqueName('test.cli-job.stale');
    await deadLetters(topic, 1);
    const job = await startDeadLetterJob(db, { selection: { originalTopic: topic }, actor: 'tester', task });
    assert.deepEqual(
      (await resumeStaleDeadLetterJobs(db, task, 60_000)).filter((id) => id === job.id),
      [],
      'a job that moved recently is left alone',
    );
    await sql`UPDATE sous.dead_letter_job SET updated_at = now() - interval '2 minutes' WHERE id = ${job.id}`.execute(
      db,
    );
    assert.ok((await resumeStaleDeadLetterJobs(db, task, 60_000)).includes(job.id));
    const queued = await sql<{ n: string }>`
      SELECT count(*) AS n FROM graphile_worker.jobs
      WHERE task_identifier = ${task} AND key = ${`sous-dead-letter-job:${job.id}`}`.execute(db);
    assert.equal(queued.rows[0]?.n, '1', 'one graphile-worker job for the DLT job, however often it is kicked');
    const fresh = await selectDeadLetterJob(db, job.id);
    assert.ok(fresh !== undefined && Date.now() - fresh.updated_at.getTime() < 30_000);
    // Run it to the end so later tests see no unfinished job of ours.
    assert.equal((await runDeadLetterJobBatch(db, env, job.id)).completed, true);
  });
});
