// The `reporting` workload of the bench: the reporting functions of version 2 over a
// database holding BENCH_REPORTING_EVENTS events (default 1,000,000), each timed with a
// 1-hour window (target: 200 ms each, issue 11), version 1 timed once over all history
// for comparison, then the retention purge timed as it deletes the seeded history.
//
// The history is seeded set-based (INSERT ... SELECT generate_series) under a recipe name
// of its own, spread over BENCH_REPORTING_DAYS days ending now: per execution 10 events,
// 4 steps and 4 attempts. Triggers are off while seeding (session_replication_role, as
// the probe's superuser): 100,000 execution rows would otherwise each NOTIFY listeners.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDatabase } from '../src/db/database.js';
import { purgeExpiredExecutions } from '../src/control-plane/retention.js';
import { databaseUrl, type StackConfig } from '../src/stack/config.js';

const EVENTS_PER_EXECUTION = 10;
const STEPS_PER_EXECUTION = 4;

/** Median of `runs` timings of `query`, in ms (the first run also warms the cache). */
async function timeQuery(client: pg.Client, query: string, runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const began = performance.now();
    await client.query(query);
    times.push(performance.now() - began);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? Number.NaN;
}

export async function reportingWorkload(
  config: StackConfig,
  events: number,
  days: number,
): Promise<Record<string, number>> {
  // One session of the superuser: the seeding's transaction and its settings stay on it.
  const client = new pg.Client({
    host: '127.0.0.1',
    port: config.pgPort,
    user: 'postgres',
    database: config.pgDatabase,
    application_name: 'sous-bench-reporting',
  });
  await client.connect();
  try {
    return await seedTimeAndPurge(client, config, events, days);
  } finally {
    await client.end();
  }
}

async function seedTimeAndPurge(
  probe: pg.Client,
  config: StackConfig,
  events: number,
  days: number,
): Promise<Record<string, number>> {
  const recipeName = `bench-reporting-${randomBytes(4).toString('hex')}`;
  const executions = Math.max(1, Math.ceil(events / EVENTS_PER_EXECUTION));
  const span = `${days} days`;
  // Execution i: id md5(recipe || i), created (i / executions) of the span ago, finished 40 s later.
  const id = `md5('${recipeName}' || i)::uuid`;
  const created = `now() - (i::float8 / ${executions}) * interval '${span}'`;
  const figures: Record<string, number> = {};
  const seeding = performance.now();
  await probe.query('BEGIN');
  try {
    await probe.query('SET LOCAL session_replication_role = replica');
    await probe.query(`INSERT INTO sous.recipe (name, version, checksum, plan) VALUES ($1, 1, $1, '{}')`, [recipeName]);
    await probe.query(
      `INSERT INTO sous.execution (id, recipe_name, recipe_version, status, input, reply_topic, state, last_seq,
         created_at, updated_at, finished_at)
       SELECT ${id}, $1, 1, 'completed', '{}', 'sous.replies', '{}', ${EVENTS_PER_EXECUTION},
         ${created}, ${created} + interval '40 seconds', ${created} + interval '40 seconds'
       FROM generate_series(1, ${executions}) AS i`,
      [recipeName],
    );
    // Two events a row, as a decision appends them (0023): a step completed and the next scheduled.
    await probe.query(
      `INSERT INTO sous.execution_event_batch (execution_id, first_seq, last_seq, created_at, events)
       SELECT ${id}, f, least(f + 1, ${EVENTS_PER_EXECUTION}), ${created} + f * interval '4 seconds',
         (SELECT json_agg(json_build_object('type',
            CASE WHEN s = 1 THEN 'ExecutionStarted' WHEN s = ${EVENTS_PER_EXECUTION} THEN 'ExecutionCompleted'
              WHEN s % 2 = 0 THEN 'StepScheduled' ELSE 'StepCompleted' END) ORDER BY s)
          FROM generate_series(f, least(f + 1, ${EVENTS_PER_EXECUTION})) AS s)
       FROM generate_series(1, ${executions}) AS i CROSS JOIN generate_series(1, ${EVENTS_PER_EXECUTION}, 2) AS f`,
    );
    // Each step with its one attempt on its row, as the control plane writes it (0022).
    await probe.query(
      `INSERT INTO sous.step (execution_id, step_key, step_id, compensation, kind, status, attempts, created_at,
         updated_at, finished_at, attempt_id, capability, attempt_status, scheduled_at, started_at,
         attempt_finished_at)
       SELECT ${id}, 's' || s, 's' || s, false, 'task', 'completed', 1, ${created}, ${created}, ${created},
         gen_random_uuid(), 'bench.reporting' || s, 'completed', ${created} + s * interval '8 seconds',
         ${created} + s * interval '8 seconds' + interval '15 ms', ${created} + s * interval '8 seconds' + interval '40 ms'
       FROM generate_series(1, ${executions}) AS i CROSS JOIN generate_series(1, ${STEPS_PER_EXECUTION}) AS s`,
    );
    await probe.query('COMMIT');
  } catch (error) {
    await probe.query('ROLLBACK');
    throw error;
  }
  // What autovacuum does in a while on its own (statistics, BRIN summaries of new ranges).
  for (const index of [
    'execution_event_batch_created_brin',
    'step_scheduled_brin',
    'execution_created_brin',
    'processed_message_processed_brin',
  ]) {
    await probe.query(`SELECT brin_summarize_new_values($1::regclass)`, [`sous.${index}`]);
  }
  await probe.query('ANALYZE sous.execution, sous.execution_event_batch, sous.step, sous.superseded_attempt');
  figures.seededEvents = executions * EVENTS_PER_EXECUTION;
  figures.seedSeconds = (performance.now() - seeding) / 1000;
  const [total] = (await probe.query<{ n: string }>('SELECT count(*) AS n FROM sous.execution_event')).rows;
  figures.eventsInDatabase = Number(total?.n ?? Number.NaN);

  const window = `now() - interval '1 hour', now()`;
  figures.v2ExecutionSummaryMs = await timeQuery(probe, `SELECT * FROM reporting_v2.execution_summary(${window})`, 5);
  figures.v2StepLatencyMs = await timeQuery(probe, `SELECT * FROM reporting_v2.step_latency(${window})`, 5);
  figures.v2ThroughputPerMinuteMs = await timeQuery(
    probe,
    `SELECT * FROM reporting_v2.throughput_per_minute(${window})`,
    5,
  );
  figures.v1ExecutionSummaryMs = await timeQuery(probe, 'SELECT * FROM reporting.execution_summary', 1);
  figures.v1StepLatencyMs = await timeQuery(probe, 'SELECT * FROM reporting.step_latency', 1);
  figures.v1ThroughputPerMinuteMs = await timeQuery(probe, 'SELECT * FROM reporting.throughput_per_minute', 1);

  // The purge deletes the seeded history (all finished over a minute ago) as sous's own role.
  const db = createDatabase({ connectionString: databaseUrl(config), poolSize: 1, applicationName: 'sous-bench' });
  try {
    const purging = performance.now();
    const report = await purgeExpiredExecutions(db, {
      retention: 60_000,
      batchSize: 500,
      recipeNames: [recipeName],
      maxRunMs: 10 * 60_000,
    });
    const seconds = (performance.now() - purging) / 1000;
    figures.purgedEvents = report.events;
    figures.purgeEventsPerSecond = report.events / seconds;
    figures.purgeBatches = report.batches;
  } finally {
    await db.destroy();
  }
  // Whatever the purge left (executions finished under a minute ago: none when seeded days back).
  await probe.query('BEGIN');
  await probe.query('SET LOCAL session_replication_role = replica');
  for (const table of ['execution_event_batch', 'superseded_attempt', 'step']) {
    await probe.query(
      `DELETE FROM sous.${table} WHERE execution_id IN (SELECT id FROM sous.execution WHERE recipe_name = $1)`,
      [recipeName],
    );
  }
  await probe.query('DELETE FROM sous.execution WHERE recipe_name = $1', [recipeName]);
  await probe.query('DELETE FROM sous.recipe WHERE name = $1', [recipeName]);
  await probe.query('COMMIT');
  return figures;
}
