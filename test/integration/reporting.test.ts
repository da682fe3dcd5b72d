// The reporting views (migrations/0005_reporting.sql) over a known workload, in a
// database of this test's own on the stack's PostgreSQL, and the read-only role; the
// windowed version 2 (0009_retention.sql) over the same workload.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createDatabase } from '../../src/db/database.js';
import { migrate, MIGRATIONS_FOLDER } from '../../src/db/migrate.js';
import { stackConfig, uniqueName } from '../helpers/stack.js';

const name = uniqueName('sous_test_reporting').replaceAll('-', '_');
const analyst = `${name}_analyst`;
const host = { host: '127.0.0.1', port: stackConfig.pgPort };
// Timestamps come back in UTC, so expected values can be written as text.
const utc = '-c TimeZone=UTC';
const admin = new pg.Client({ ...host, user: 'postgres', database: 'postgres' });
const clients: pg.Client[] = [];

async function connect(user: string, database = name): Promise<pg.Client> {
  const client = new pg.Client({ ...host, user, database, options: utc });
  await client.connect();
  clients.push(client);
  return client;
}

/**
 * Rows of `query` as JSON: counts and rounded numerics arrive as numbers, timestamps as
 * ISO text, intervals as text, so whole rows compare with deepEqual.
 */
async function rows<T>(client: pg.Client, query: string, values: unknown[] = []): Promise<T[]> {
  const result = await client.query<{ r: T }>(`SELECT to_jsonb(q) AS r FROM (${query}) AS q`, values);
  return result.rows.map((row) => row.r);
}

/** The workload's fixed clock: T0 + seconds, as PostgreSQL prints it in UTC. */
const T0 = Date.parse('2024-05-01T10:00:00Z');
const at = (seconds: number): string => new Date(T0 + seconds * 1000).toISOString();
const printed = (seconds: number): string => at(seconds).replace(/\.000Z$/, '+00:00');

// ---- The workload -------------------------------------------------------------------

interface Execution {
  readonly recipe: string;
  readonly version: number;
  readonly status: 'running' | 'paused' | 'compensating' | 'completed' | 'failed' | 'cancelled';
  /** Seconds after T0. */
  readonly created: number;
  readonly finished?: number;
  /** updated_at = now() - this interval; else finished_at, else created_at. */
  readonly idle?: string;
}

const executions = {
  // orders v1: four completed in 10, 20, 40 and 100 s, one failed in 5 s, one running.
  e1: { recipe: 'orders', version: 1, status: 'completed', created: 0, finished: 10 },
  e2: { recipe: 'orders', version: 1, status: 'completed', created: 60, finished: 80 },
  e3: { recipe: 'orders', version: 1, status: 'completed', created: 120, finished: 160 },
  e4: { recipe: 'orders', version: 1, status: 'completed', created: 180, finished: 280 },
  e5: { recipe: 'orders', version: 1, status: 'failed', created: 240, finished: 245 },
  // Running but active (updated now): never stuck.
  e6: { recipe: 'orders', version: 1, status: 'running', created: 300, idle: '0 seconds' },
  e7: { recipe: 'orders', version: 2, status: 'cancelled', created: 400, finished: 401.5 },
  // refunds v1: one per reason of stuck_executions, idle for 10 minutes unless said.
  s1: { recipe: 'refunds', version: 1, status: 'paused', created: 0, idle: '10 minutes' },
  s2: { recipe: 'refunds', version: 1, status: 'running', created: 0, idle: '10 minutes' },
  s3: { recipe: 'refunds', version: 1, status: 'running', created: 0, idle: '10 minutes' },
  s4: { recipe: 'refunds', version: 1, status: 'running', created: 0, idle: '10 minutes' },
  s5: { recipe: 'refunds', version: 1, status: 'running', created: 0, idle: '10 minutes' },
  s6: { recipe: 'refunds', version: 1, status: 'running', created: 0, idle: '10 minutes' },
  s7: { recipe: 'refunds', version: 1, status: 'running', created: 0, idle: '10 minutes' },
  s8: { recipe: 'refunds', version: 1, status: 'compensating', created: 0, idle: '10 minutes' },
  s9: { recipe: 'refunds', version: 1, status: 'running', created: 0, idle: '10 minutes' },
  // Idle for 2 minutes: stuck only below the default threshold.
  s10: { recipe: 'refunds', version: 1, status: 'running', created: 0, idle: '2 minutes' },
  // Finished an hour ago: terminal, never stuck.
  s11: { recipe: 'refunds', version: 1, status: 'completed', created: 0, finished: 3600, idle: '1 hour' },
} satisfies Record<string, Execution>;
type ExecutionKey = keyof typeof executions;
const ids = Object.fromEntries(Object.keys(executions).map((key) => [key, randomUUID()])) as Record<
  ExecutionKey,
  string
>;
const keyOf = new Map(Object.entries(ids).map(([key, id]) => [id, key]));

/** [execution, step key, kind, status, compensation] */
const steps: [ExecutionKey, string, string, string, boolean][] = [
  ['e1', 'charge', 'task', 'completed', false],
  ['e2', 'charge', 'task', 'completed', false],
  ['e3', 'charge', 'task', 'completed', false],
  ['e4', 'charge', 'task', 'completed', false],
  ['e5', 'charge', 'task', 'completed', false],
  ['e5', 'charge.compensation', 'task', 'completed', true],
  ['s1', 'charge', 'task', 'dead_lettered', false],
  ['s2', 'reserve', 'task', 'dead_lettered', false],
  ['s2', 'charge', 'task', 'dead_lettered', false],
  ['s2', 'approve', 'waitForSignal', 'open', false],
  ['s3', 'approve', 'waitForSignal', 'open', false],
  ['s3', 'notify', 'task', 'running', false],
  ['s4', 'charge', 'task', 'retry_wait', false],
  ['s4', 'nap', 'sleep', 'open', false],
  ['s5', 'nap', 'sleep', 'open', false],
  ['s5', 'child', 'subRecipe', 'open', false],
  ['s6', 'child', 'subRecipe', 'open', false],
  ['s6', 'fanout', 'parallel', 'open', false],
  ['s7', 'ship', 'task', 'running', false],
  ['s7', 'pack', 'task', 'scheduled', false],
  ['s8', 'charge', 'task', 'failed', false],
  ['s8', 'reserve.compensation', 'task', 'completed', true],
  ['s9', 'charge', 'task', 'completed', false],
  ['s9', 'fanout', 'parallel', 'open', false],
];

/** [execution, step key, attempt, capability, status, scheduled (s after T0), queue ms, run ms] */
const attempts: [ExecutionKey, string, number, string, string, number, number | null, number | null][] = [
  // payments.charge: queue 50, 100, 200, 300, 1000 ms; run 500, 1000, 2000, 3000, 4000 ms.
  ['e1', 'charge', 1, 'payments.charge', 'completed', 1, 100, 1000],
  ['e2', 'charge', 1, 'payments.charge', 'failed', 61, 50, 500],
  ['e2', 'charge', 2, 'payments.charge', 'completed', 65, 200, 2000],
  ['e3', 'charge', 1, 'payments.charge', 'completed', 121, 300, 3000],
  ['e4', 'charge', 1, 'payments.charge', 'completed', 181, 1000, 4000],
  // A compensation: counted like any attempt, and as a compensation attempt.
  ['e5', 'charge.compensation', 1, 'payments.refund', 'completed', 244, 10, 20],
  // Started, no reply yet: a queue time, no run time.
  ['s3', 'notify', 1, 'mail.send', 'running', 5, 250, null],
  // A failed attempt, then a running retry.
  ['s7', 'ship', 1, 'shipping.ship', 'failed', 5, 1000, 2000],
  ['s7', 'ship', 2, 'shipping.ship', 'running', 10, 500, null],
  // Not taken by a worker yet: neither.
  ['s7', 'pack', 1, 'warehouse.pack', 'scheduled', 10, null, null],
];

/** [execution, type, seconds after T0, extra event data] */
const events: [ExecutionKey, string, number, Record<string, unknown>][] = [
  ['e1', 'ExecutionStarted', 0, {}],
  ['e1', 'StepScheduled', 1, {}],
  ['e1', 'StepCompleted', 5, {}],
  ['e1', 'ExecutionCompleted', 10, {}],
  ['e2', 'ExecutionStarted', 60, {}],
  ['e2', 'StepFailed', 90, { retryAt: at(95) }],
  ['e2', 'StepCompleted', 119.999, {}],
  // On the minute: belongs to 10:02, not 10:01.
  ['e2', 'ExecutionCompleted', 120, {}],
  ['e5', 'ExecutionStarted', 240, {}],
  ['e5', 'StepFailed', 242, {}],
  ['e5', 'ExecutionFailed', 245, {}],
  // A minute with only uncounted events has no row.
  ['e7', 'StepScheduled', 330, {}],
  ['e7', 'ExecutionStarted', 400, {}],
  ['e7', 'ExecutionCancelled', 401, {}],
];

/** [capability, original topic, error code, status, seconds after T0] */
const deadLetters: [string | null, string, string, string, number][] = [
  ['payments.charge', 'sous.cmd.payments.charge', 'VALIDATION', 'pending', 60],
  ['payments.charge', 'sous.cmd.payments.charge', 'VALIDATION', 'pending', 300],
  // Resolved: not in the backlog, though older than the pending ones.
  ['payments.charge', 'sous.cmd.payments.charge', 'VALIDATION', 'reprocessed', 0],
  ['payments.charge', 'sous.cmd.payments.charge', 'TIMEOUT', 'pending', 120],
  // Not a command: reported under its topic.
  [null, 'sous.replies', 'MALFORMED', 'pending', 180],
  [null, 'sous.replies', 'MALFORMED', 'pending', 240],
  ['mail.send', 'sous.cmd.mail.send', 'REJECTED', 'discarded', 0],
];

async function insertWorkload(db: pg.Client): Promise<void> {
  await db.query('BEGIN');
  for (const [recipe, version] of [
    ['orders', 1],
    ['orders', 2],
    ['refunds', 1],
  ] as const) {
    await db.query(`INSERT INTO sous.recipe (name, version, checksum, plan) VALUES ($1, $2, $3, '{}')`, [
      recipe,
      version,
      `${recipe}-${version}`,
    ]);
  }
  for (const [key, e] of Object.entries(executions) as [ExecutionKey, Execution][]) {
    const created = at(e.created);
    const finished = e.finished === undefined ? null : at(e.finished);
    await db.query(
      `INSERT INTO sous.execution
         (id, recipe_name, recipe_version, status, input, reply_topic, state, last_seq, created_at, updated_at, finished_at)
       VALUES ($1, $2, $3, $4, '{}', 'sous.replies', '{}', 0, $5,
         coalesce(now() - $6::interval, $7::timestamptz, $5::timestamptz), $7)`,
      [ids[key], e.recipe, e.version, e.status, created, e.idle ?? null, finished],
    );
  }
  for (const [key, stepKey, kind, status, compensation] of steps) {
    await db.query(
      `INSERT INTO sous.step (execution_id, step_key, step_id, compensation, kind, status, attempts, created_at, updated_at)
       VALUES ($1, $2, $2, $3, $4, $5, 1, $6, $6)`,
      [ids[key], stepKey, compensation, kind, status, at(0)],
    );
  }
  for (const [key, stepKey, attempt, capability, status, scheduled, queueMs, runMs] of attempts) {
    const startedMs = queueMs === null ? null : scheduled * 1000 + queueMs;
    const started = startedMs === null ? null : at(startedMs / 1000);
    const finished = startedMs === null || runMs === null ? null : at((startedMs + runMs) / 1000);
    await db.query(
      // Every attempt as a superseded one: sous.step_attempt shows them as it shows a step's current one.
      `INSERT INTO sous.superseded_attempt
         (id, execution_id, step_key, attempt, capability, status, scheduled_at, started_at, finished_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [randomUUID(), ids[key], stepKey, attempt, capability, status, at(scheduled), started, finished],
    );
  }
  const seq = new Map<string, number>();
  for (const [key, type, seconds, extra] of events) {
    const next = (seq.get(key) ?? 0) + 1;
    seq.set(key, next);
    // An execution's first event as releases before 0023 wrote it (a row per event), the
    // rest in batches of one: the reports read both.
    await db.query(
      next === 1
        ? `INSERT INTO sous.execution_event_row (execution_id, seq, type, data, created_at) VALUES ($1, $2, $3, $4, $5)`
        : `INSERT INTO sous.execution_event_batch (execution_id, first_seq, last_seq, created_at, events)
           VALUES ($1, $2, $2, $5, json_build_array(jsonb_build_object('type', $3::text) || $4::jsonb))`,
      [ids[key], next, type, JSON.stringify({ type, at: at(seconds), ...extra }), at(seconds)],
    );
  }
  for (const [offset, [capability, topic, code, status, seconds]] of deadLetters.entries()) {
    await db.query(
      `INSERT INTO sous.dead_letter (id, dlt_topic, dlt_partition, dlt_offset, original_topic, headers,
         error_class, error_code, error_message, capability, status, ingested_at)
       VALUES ($1, $2 || '.DLT', 0, $3, $2, '{}', 'Error', $4, 'test', $5, $6, $7)`,
      [randomUUID(), topic, offset, code, capability, status, at(seconds)],
    );
  }
  await db.query('COMMIT');
}

// ---- Setup ---------------------------------------------------------------------------

/** The owner of the database: migrates, writes the workload, reads the views. */
let db: pg.Client;

before(async () => {
  await admin.connect();
  // The role is cluster-wide and the stack's `sous` may not create roles: like an
  // administrator would, create it once (idempotently); the migration then grants.
  await admin.query(`
    DO $$
    BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sous_reporting') THEN
        CREATE ROLE sous_reporting NOLOGIN;
      END IF;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END
    $$`);
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} OWNER ${pg.escapeIdentifier(stackConfig.pgUser)}`);
  await admin.query(`CREATE ROLE ${pg.escapeIdentifier(analyst)} LOGIN IN ROLE sous_reporting`);
  const kysely = createDatabase({
    connectionString: `postgres://${stackConfig.pgUser}@127.0.0.1:${stackConfig.pgPort}/${name}`,
    poolSize: 1,
  });
  try {
    await migrate(kysely);
  } finally {
    await kysely.destroy();
  }
  db = await connect(stackConfig.pgUser);
  await insertWorkload(db);
});

after(async () => {
  await Promise.all(clients.map((client) => client.end()));
  await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(analyst)}`);
  await admin.end();
});

// ---- The views -----------------------------------------------------------------------

/** A throughput_per_minute row's counters when nothing of a kind happened in that minute. */
const zero = {
  executions_started: 0,
  executions_completed: 0,
  executions_failed: 0,
  executions_cancelled: 0,
  steps_completed: 0,
  steps_failed: 0,
  steps_failed_final: 0,
};

describe('reporting views', () => {
  it('execution_summary: counts, time range and duration percentiles per recipe, version and status', async () => {
    const summary = await rows<Record<string, unknown>>(
      db,
      `SELECT * FROM reporting.execution_summary WHERE recipe_name = 'orders' ORDER BY recipe_version, status`,
    );
    assert.deepEqual(summary, [
      {
        recipe_name: 'orders',
        recipe_version: 1,
        status: 'completed',
        executions: 4,
        oldest_created_at: printed(0),
        newest_created_at: printed(180),
        finished: 4,
        // 10, 20, 40, 100 s: mean 42.5; median (20 + 40) / 2; p95 at rank 2.85: 40 + 0.85 * 60.
        avg_duration_s: 42.5,
        p50_duration_s: 30,
        p95_duration_s: 91,
      },
      {
        recipe_name: 'orders',
        recipe_version: 1,
        status: 'failed',
        executions: 1,
        oldest_created_at: printed(240),
        newest_created_at: printed(240),
        finished: 1,
        avg_duration_s: 5,
        p50_duration_s: 5,
        p95_duration_s: 5,
      },
      {
        recipe_name: 'orders',
        recipe_version: 1,
        status: 'running',
        executions: 1,
        oldest_created_at: printed(300),
        newest_created_at: printed(300),
        finished: 0,
        avg_duration_s: null,
        p50_duration_s: null,
        p95_duration_s: null,
      },
      {
        recipe_name: 'orders',
        recipe_version: 2,
        status: 'cancelled',
        executions: 1,
        oldest_created_at: printed(400),
        newest_created_at: printed(400),
        finished: 1,
        avg_duration_s: 1.5,
        p50_duration_s: 1.5,
        p95_duration_s: 1.5,
      },
    ]);
    const refunds = await rows<{ status: string; executions: number; p50_duration_s: number | null }>(
      db,
      `SELECT status, executions, p50_duration_s FROM reporting.execution_summary
       WHERE recipe_name = 'refunds' ORDER BY status`,
    );
    assert.deepEqual(refunds, [
      { status: 'compensating', executions: 1, p50_duration_s: null },
      { status: 'completed', executions: 1, p50_duration_s: 3600 },
      { status: 'paused', executions: 1, p50_duration_s: null },
      { status: 'running', executions: 8, p50_duration_s: null },
    ]);
  });

  it('step_latency: outcomes and queue/run percentiles per capability, compensations included', async () => {
    const latency = await rows<Record<string, unknown>>(db, 'SELECT * FROM reporting.step_latency ORDER BY capability');
    const none = { p50_run_ms: null, p95_run_ms: null, p99_run_ms: null };
    assert.deepEqual(latency, [
      {
        capability: 'mail.send',
        attempts: 1,
        completed: 0,
        failed: 0,
        in_flight: 1,
        compensation_attempts: 0,
        p50_queue_ms: 250,
        p95_queue_ms: 250,
        p99_queue_ms: 250,
        ...none,
      },
      {
        capability: 'payments.charge',
        attempts: 5,
        completed: 4,
        failed: 1,
        in_flight: 0,
        compensation_attempts: 0,
        // Queue 50, 100, 200, 300, 1000: p95 at rank 3.8 = 300 + 0.8 * 700, p99 at 3.96 = 300 + 0.96 * 700.
        p50_queue_ms: 200,
        p95_queue_ms: 860,
        p99_queue_ms: 972,
        // Run 500, 1000, 2000, 3000, 4000: 3000 + 0.8 * 1000 and 3000 + 0.96 * 1000.
        p50_run_ms: 2000,
        p95_run_ms: 3800,
        p99_run_ms: 3960,
      },
      {
        capability: 'payments.refund',
        attempts: 1,
        completed: 1,
        failed: 0,
        in_flight: 0,
        compensation_attempts: 1,
        p50_queue_ms: 10,
        p95_queue_ms: 10,
        p99_queue_ms: 10,
        p50_run_ms: 20,
        p95_run_ms: 20,
        p99_run_ms: 20,
      },
      {
        capability: 'shipping.ship',
        attempts: 2,
        completed: 0,
        failed: 1,
        in_flight: 1,
        compensation_attempts: 0,
        // Queue 500, 1000; the running retry has no run time yet.
        p50_queue_ms: 750,
        p95_queue_ms: 975,
        p99_queue_ms: 995,
        p50_run_ms: 2000,
        p95_run_ms: 2000,
        p99_run_ms: 2000,
      },
      {
        capability: 'warehouse.pack',
        attempts: 1,
        completed: 0,
        failed: 0,
        in_flight: 1,
        compensation_attempts: 0,
        p50_queue_ms: null,
        p95_queue_ms: null,
        p99_queue_ms: null,
        ...none,
      },
    ]);
  });

  describe('stuck_executions', () => {
    interface Stuck {
      execution_id: string;
      recipe_name: string;
      status: string;
      reason: string;
      waiting_on: string[];
      idle_min: number;
      stuck_after: string;
    }
    const stuck = async (client: pg.Client) =>
      (
        await rows<Stuck>(
          client,
          `SELECT execution_id, recipe_name, status, reason, waiting_on,
             floor(extract(epoch FROM idle_for) / 60)::int AS idle_min, stuck_after
           FROM reporting.stuck_executions`,
        )
      )
        .map(({ execution_id, ...row }) => ({ key: keyOf.get(execution_id), ...row }))
        .sort((a, b) => (a.key ?? '').localeCompare(b.key ?? '', 'en', { numeric: true }));
    const tenMinutes = (key: string, status: string, reason: string, waiting_on: string[]) => ({
      key,
      recipe_name: 'refunds',
      status,
      reason,
      waiting_on,
      idle_min: 10,
      stuck_after: '00:05:00',
    });
    const expected = [
      // Paused comes first, though a step is dead-lettered.
      tenMinutes('s1', 'paused', 'paused', []),
      tenMinutes('s2', 'running', 'dead_lettered', ['charge', 'reserve']),
      // Waiting for a signal comes before the attempt in flight.
      tenMinutes('s3', 'running', 'waiting_for_signal', ['approve']),
      tenMinutes('s4', 'running', 'retry_wait', ['charge']),
      tenMinutes('s5', 'running', 'sleeping', ['nap']),
      // An open parallel container is not a reason.
      tenMinutes('s6', 'running', 'waiting_for_sub_recipe', ['child']),
      // Each step with an attempt scheduled or running; not the failed first attempt.
      tenMinutes('s7', 'running', 'step_in_flight', ['pack', 'ship']),
      tenMinutes('s8', 'compensating', 'compensating', []),
      tenMinutes('s9', 'running', 'no_progress', []),
    ];

    it('lists non-terminal executions idle beyond 5 minutes by default, with the first reason that applies', async () => {
      assert.deepEqual(await stuck(db), expected);
    });

    it('takes its threshold from the setting sous.stuck_after', async () => {
      const session = await connect(stackConfig.pgUser);
      await session.query(`SET sous.stuck_after = '1 minute'`);
      const lower = await stuck(session);
      assert.deepEqual(
        lower,
        [...expected, { ...tenMinutes('s10', 'running', 'no_progress', []), idle_min: 2 }].map((row) => ({
          ...row,
          stuck_after: '00:01:00',
        })),
      );
      await session.query(`SET sous.stuck_after = '30 minutes'`);
      assert.deepEqual(await stuck(session), [], 'nothing idle for 30 minutes but terminal executions');
      // A placeholder set then reset reads as '': the default applies again.
      await session.query('RESET sous.stuck_after');
      assert.deepEqual(await stuck(session), expected);
    });
  });

  it('dead_letter_backlog: pending dead letters by capability (else topic) and error code', async () => {
    assert.deepEqual(await rows(db, 'SELECT * FROM reporting.dead_letter_backlog ORDER BY capability, error_code'), [
      {
        capability: 'payments.charge',
        error_code: 'TIMEOUT',
        pending: 1,
        oldest_ingested_at: printed(120),
        newest_ingested_at: printed(120),
      },
      {
        capability: 'payments.charge',
        error_code: 'VALIDATION',
        pending: 2,
        // The reprocessed one, ingested at T0, is not counted.
        oldest_ingested_at: printed(60),
        newest_ingested_at: printed(300),
      },
      {
        capability: 'sous.replies',
        error_code: 'MALFORMED',
        pending: 2,
        oldest_ingested_at: printed(180),
        newest_ingested_at: printed(240),
      },
    ]);
  });

  it('throughput_per_minute: events of the log counted per minute', async () => {
    assert.deepEqual(await rows(db, 'SELECT * FROM reporting.throughput_per_minute ORDER BY minute'), [
      { ...zero, minute: printed(0), executions_started: 1, executions_completed: 1, steps_completed: 1 },
      // The failure will be retried: a failed step, not a final one.
      { ...zero, minute: printed(60), executions_started: 1, steps_completed: 1, steps_failed: 1 },
      { ...zero, minute: printed(120), executions_completed: 1 },
      {
        ...zero,
        minute: printed(240),
        executions_started: 1,
        executions_failed: 1,
        steps_failed: 1,
        steps_failed_final: 1,
      },
      { ...zero, minute: printed(360), executions_started: 1, executions_cancelled: 1 },
    ]);
  });

  describe('outbox_lag', () => {
    interface Lag {
      outbox_rows: number;
      slot_name: string | null;
      active: boolean | null;
      wal_status: string | null;
      unconfirmed_bytes: number | null;
      retained_bytes: number | null;
    }
    const lag = async (client: pg.Client = db): Promise<Lag[]> =>
      rows<Lag>(client, 'SELECT * FROM reporting.outbox_lag');
    const insertOutbox = (client: pg.Client) =>
      client.query(
        `INSERT INTO sous.outbox (id, aggregate_type, aggregate_id, event_type, topic, payload)
         VALUES (gen_random_uuid(), 'execution', 'k', 'test', 'sous.test', '{}')`,
      );
    const noSlot = { slot_name: null, active: null, wal_status: null, unconfirmed_bytes: null, retained_bytes: null };

    it('has its one row without a replication slot, and counts committed outbox rows', async () => {
      // This database has no slot of the connector (the stack's slot belongs to database sous).
      assert.deepEqual(await lag(), [{ outbox_rows: 0, ...noSlot }]);

      // The writers' way: insert and delete in one transaction leaves nothing.
      await db.query('BEGIN');
      await insertOutbox(db);
      await db.query('DELETE FROM sous.outbox');
      await db.query('COMMIT');
      assert.deepEqual(await lag(), [{ outbox_rows: 0, ...noSlot }]);

      // A row of a transaction still open is not visible; committed without its delete, it is.
      const writer = await connect(stackConfig.pgUser);
      await writer.query('BEGIN');
      await insertOutbox(writer);
      assert.deepEqual(await lag(), [{ outbox_rows: 0, ...noSlot }]);
      await writer.query('COMMIT');
      assert.deepEqual(await lag(), [{ outbox_rows: 1, ...noSlot }]);
      await db.query('DELETE FROM sous.outbox');
      assert.deepEqual(await lag(), [{ outbox_rows: 0, ...noSlot }]);
    });

    it('reports the slot named by sous.outbox_slot: active, and the WAL not yet confirmed', async () => {
      // A temporary slot: it is dropped when its session ends, even if this test dies.
      const holder = await connect('postgres');
      const slot = `${name}_slot`;
      await holder.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput', true)`, [slot]);
      try {
        const reader = await connect(stackConfig.pgUser);
        assert.deepEqual(await lag(reader), [{ outbox_rows: 0, ...noSlot }], 'the default name is sous_outbox');
        await reader.query(`SELECT set_config('sous.outbox_slot', $1, false)`, [slot]);
        const [first] = await lag(reader);
        assert.ok(first !== undefined);
        assert.equal(first.slot_name, slot);
        assert.equal(first.active, true, 'a temporary slot is held by its session');
        assert.equal(first.wal_status, 'reserved');
        assert.ok(first.unconfirmed_bytes !== null && first.unconfirmed_bytes >= 0);
        assert.ok(first.retained_bytes !== null && first.retained_bytes >= first.unconfirmed_bytes);

        // Writing WAL nobody consumes grows the lag.
        await reader.query('BEGIN');
        await insertOutbox(reader);
        await reader.query('DELETE FROM sous.outbox');
        await reader.query('COMMIT');
        const [second] = await lag(reader);
        assert.ok(second?.unconfirmed_bytes !== null && second?.unconfirmed_bytes !== undefined);
        assert.ok(
          second.unconfirmed_bytes > first.unconfirmed_bytes,
          `lag ${second.unconfirmed_bytes} > ${first.unconfirmed_bytes}`,
        );
        assert.equal(second.outbox_rows, 0);
      } finally {
        await holder.query('SELECT pg_drop_replication_slot($1)', [slot]);
      }
    });
  });
});

// ---- Version 2: a time window ---------------------------------------------------------

describe('reporting_v2: history reports over a time window', () => {
  const windowed = [
    ['execution_summary', 'recipe_name, recipe_version, status'],
    ['step_latency', 'capability'],
    ['throughput_per_minute', 'minute'],
  ] as const;

  it('over a window holding everything, give exactly the rows and columns of version 1', async () => {
    for (const [report, order] of windowed) {
      const v1 = await db.query(`SELECT * FROM reporting.${report} ORDER BY ${order}`);
      const v2 = await db.query(`SELECT * FROM reporting_v2.${report}($1, $2) ORDER BY ${order}`, [
        at(-3600),
        at(7200),
      ]);
      assert.deepEqual(
        v2.fields.map((f) => [f.name, f.dataTypeID]),
        v1.fields.map((f) => [f.name, f.dataTypeID]),
        `${report}: the same columns, in the same order, of the same types`,
      );
      assert.deepEqual(
        await rows(db, `SELECT * FROM reporting_v2.${report}($1, $2) ORDER BY ${order}`, [at(-3600), at(7200)]),
        await rows(db, `SELECT * FROM reporting.${report} ORDER BY ${order}`),
        report,
      );
      assert.ok(v1.rows.length > 0, `${report} has rows to compare`);
    }
  });

  it('execution_summary: the executions created in [since, until)', async () => {
    // e2, e3, e4 (created at 60, 120, 180); e5 at 240 is the end of the window, left out.
    assert.deepEqual(await rows(db, 'SELECT * FROM reporting_v2.execution_summary($1, $2)', [at(60), at(240)]), [
      {
        recipe_name: 'orders',
        recipe_version: 1,
        status: 'completed',
        executions: 3,
        oldest_created_at: printed(60),
        newest_created_at: printed(180),
        finished: 3,
        // 20, 40, 100 s: mean 53.333; median 40; p95 at rank 1.9: 40 + 0.9 * 60.
        avg_duration_s: 53.333,
        p50_duration_s: 40,
        p95_duration_s: 94,
      },
    ]);
  });

  it('step_latency: the attempts scheduled in the window', async () => {
    const latency = await rows<Record<string, unknown>>(
      db,
      `SELECT capability, attempts, completed, failed, in_flight, p50_queue_ms, p50_run_ms
       FROM reporting_v2.step_latency($1, $2)`,
      [at(61), at(122)],
    );
    // Scheduled at 61 (failed), 65 and 121: queue 50, 200, 300 ms; run 500, 2000, 3000 ms.
    assert.deepEqual(latency, [
      {
        capability: 'payments.charge',
        attempts: 3,
        completed: 2,
        failed: 1,
        in_flight: 0,
        p50_queue_ms: 200,
        p50_run_ms: 2000,
      },
    ]);
  });

  it('throughput_per_minute: the events created in the window, until excluded and now() by default', async () => {
    // The ExecutionCompleted at 120 is the end of the window: not counted.
    assert.deepEqual(await rows(db, 'SELECT * FROM reporting_v2.throughput_per_minute($1, $2)', [at(60), at(120)]), [
      { ...zero, minute: printed(60), executions_started: 1, steps_completed: 1, steps_failed: 1 },
    ]);
    assert.deepEqual(
      await rows(db, 'SELECT minute FROM reporting_v2.throughput_per_minute($1) ORDER BY minute', [at(200)]),
      [{ minute: printed(240) }, { minute: printed(360) }],
    );
    assert.deepEqual(
      await rows(db, 'SELECT * FROM reporting_v2.throughput_per_minute($1, $2)', [at(120), at(60)]),
      [],
      'an empty window has no rows',
    );
  });

  it('windowed reports plan without parallel workers (0025): their start-up cost more than a window scan', async () => {
    for (const [report] of windowed) {
      const { rows: config } = await db.query<{ config: string[] | null }>(
        `SELECT proconfig AS config FROM pg_proc WHERE oid = $1::regprocedure`,
        [`reporting_v2.${report}(timestamptz, timestamptz)`],
      );
      assert.ok(config[0]?.config?.includes('max_parallel_workers_per_gather=0'), report);
    }
  });

  it('point-in-time reports are the version 1 views under the version 2 names', async () => {
    for (const [view, order] of [
      ['stuck_executions', 'execution_id'],
      ['dead_letter_backlog', 'capability, error_code'],
      ['outbox_lag', 'slot_name'],
    ] as const) {
      // One statement, so now() (idle_for) is the same for both.
      const result = await db.query<{ same: boolean; n: number }>(
        `SELECT (SELECT jsonb_agg(to_jsonb(v) ORDER BY ${order}) FROM reporting.${view} AS v)
           = (SELECT jsonb_agg(to_jsonb(v) ORDER BY ${order}) FROM reporting_v2.${view} AS v) AS same,
           (SELECT count(*)::int FROM reporting_v2.${view}) AS n`,
      );
      const [row] = result.rows;
      assert.ok(row !== undefined);
      assert.equal(row.same, true, view);
      assert.ok(row.n > 0, `${view} has rows to compare`);
    }
  });
});

describe('version 1 stays as it was', () => {
  it('migration 0009 changes no view of the schema reporting', async () => {
    const scratch = uniqueName('sous_test_reporting_v1').replaceAll('-', '_');
    const folder = mkdtempSync(join(tmpdir(), 'sous-migrations-'));
    for (const file of readdirSync(MIGRATIONS_FOLDER).filter((f) => /^000[1-8]_.+\.sql$/.test(f))) {
      copyFileSync(join(MIGRATIONS_FOLDER, file), join(folder, file));
    }
    await admin.query(
      `CREATE DATABASE ${pg.escapeIdentifier(scratch)} OWNER ${pg.escapeIdentifier(stackConfig.pgUser)}`,
    );
    const kysely = createDatabase({
      connectionString: `postgres://${stackConfig.pgUser}@127.0.0.1:${stackConfig.pgPort}/${scratch}`,
      poolSize: 1,
    });
    // Not through connect(): this client must be gone before its database is dropped.
    const owner = new pg.Client({ ...host, user: stackConfig.pgUser, database: scratch, options: utc });
    try {
      await owner.connect();
      const definitions = () =>
        rows(
          owner,
          `SELECT c.relname, pg_get_viewdef(c.oid) AS definition, obj_description(c.oid, 'pg_class') AS comment,
             (SELECT jsonb_agg(jsonb_build_array(a.attname, format_type(a.atttypid, a.atttypmod),
                col_description(c.oid, a.attnum)) ORDER BY a.attnum)
              FROM pg_attribute AS a WHERE a.attrelid = c.oid AND a.attnum > 0) AS columns,
             c.relacl::text[] AS privileges
           FROM pg_class AS c WHERE c.relnamespace = 'reporting'::regnamespace ORDER BY c.relname`,
        );
      assert.equal((await migrate(kysely, folder)).at(-1), '0008_hot_updates');
      const before = await definitions();
      assert.equal(before.length, 6);
      assert.ok((await migrate(kysely)).includes('0009_retention'));
      assert.deepEqual(await definitions(), before);
    } finally {
      await owner.end();
      await kysely.destroy();
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(scratch)} WITH (FORCE)`);
    }
  });
});

// ---- The role ------------------------------------------------------------------------

describe('the role sous_reporting', () => {
  const views = [
    'execution_summary',
    'step_latency',
    'stuck_executions',
    'dead_letter_backlog',
    'outbox_lag',
    'throughput_per_minute',
  ];

  it('reads every reporting view, and nothing of the schema sous', async () => {
    const session = await connect(analyst);
    for (const view of views) {
      const result = await session.query(`SELECT count(*)::int AS n FROM reporting.${view}`);
      assert.ok(result.rowCount === 1, view);
    }
    // The figures are the owner's: the views read the tables with their owner's rights.
    const summary = await rows<{ executions: number }>(
      session,
      `SELECT executions FROM reporting.execution_summary
       WHERE recipe_name = 'orders' AND recipe_version = 1 AND status = 'completed'`,
    );
    assert.deepEqual(summary, [{ executions: 4 }]);
    await session.query(`SET sous.stuck_after = '1 minute'`);
    const stuck = await session.query<{ n: number }>('SELECT count(*)::int AS n FROM reporting.stuck_executions');
    assert.equal(stuck.rows[0]?.n, 10, 'the analyst sets its own threshold');

    for (const table of ['execution', 'step_attempt', 'dead_letter', 'api_token', 'outbox']) {
      await assert.rejects(session.query(`SELECT * FROM sous.${table}`), /permission denied for schema sous/);
    }
    // Read-only: nothing can be created in the schema either.
    await assert.rejects(
      session.query('CREATE VIEW reporting.mine AS SELECT 1 AS one'),
      /permission denied for schema reporting/,
    );
  });

  it('works through SET ROLE from a login role that is a member', async () => {
    const session = await connect(analyst);
    await session.query('SET ROLE sous_reporting');
    const who = await session.query<{ current_user: string }>('SELECT current_user');
    assert.equal(who.rows[0]?.current_user, 'sous_reporting');
    const outbox = await rows(session, 'SELECT outbox_rows FROM reporting.outbox_lag');
    assert.deepEqual(outbox, [{ outbox_rows: 0 }]);
    await assert.rejects(session.query('SELECT * FROM sous.execution'), /permission denied for schema sous/);
    const privileges = await session.query<{ usage: boolean; login: boolean }>(
      `SELECT has_schema_privilege('sous_reporting', 'sous', 'USAGE') AS usage,
         (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'sous_reporting') AS login`,
    );
    assert.deepEqual(privileges.rows, [{ usage: false, login: false }]);
  });

  it('reads every report of version 2; PUBLIC may not run its functions', async () => {
    const session = await connect(analyst);
    for (const report of ['execution_summary', 'step_latency', 'throughput_per_minute']) {
      const result = await session.query(`SELECT count(*)::int AS n FROM reporting_v2.${report}($1, $2)`, [
        at(0),
        at(3600),
      ]);
      assert.ok((result.rows[0] as { n: number }).n > 0, report);
    }
    for (const view of ['stuck_executions', 'dead_letter_backlog', 'outbox_lag']) {
      const result = await session.query(`SELECT count(*)::int AS n FROM reporting_v2.${view}`);
      assert.equal(result.rowCount, 1, view);
    }
    await assert.rejects(
      session.query('CREATE VIEW reporting_v2.mine AS SELECT 1 AS one'),
      /permission denied for schema reporting_v2/,
    );
    const publicExecute = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_proc AS p CROSS JOIN LATERAL aclexplode(p.proacl) AS acl
       WHERE p.pronamespace = 'reporting_v2'::regnamespace AND acl.grantee = 0`,
    );
    assert.equal(publicExecute.rows[0]?.n, 0);
  });
});
