-- Reporting: read-only views over the engine's tables, in a schema of their own, and a
-- role that may read these views and nothing else. Dashboards and analysts query
-- `reporting.*`; the tables in `sous` stay private to the control plane, so their layout
-- can change behind the views. docs/reporting.md describes every view.
--
-- The views run with their owner's rights (security_invoker is off, the default): a
-- member of sous_reporting reads the figures through them without any privilege on the
-- `sous` schema. Functions a view calls (current_setting, pg_current_wal_lsn) run as the
-- caller, so the session settings below are the caller's own.

CREATE SCHEMA reporting;
COMMENT ON SCHEMA reporting IS
  'Read-only reporting views over sous (see docs/reporting.md). Readable by the role sous_reporting.';

-- Durations are rounded: percentile_cont interpolates in double precision, and
-- 90.99999999999997 seconds helps nobody. Timestamps have microsecond precision, so
-- three decimals of a millisecond lose nothing.

CREATE VIEW reporting.execution_summary AS
SELECT
  e.recipe_name,
  e.recipe_version,
  e.status,
  count(*) AS executions,
  min(e.created_at) AS oldest_created_at,
  max(e.created_at) AS newest_created_at,
  count(e.finished_at) AS finished,
  round(avg(d.seconds), 3) AS avg_duration_s,
  round((percentile_cont(0.5) WITHIN GROUP (ORDER BY d.seconds))::numeric, 3) AS p50_duration_s,
  round((percentile_cont(0.95) WITHIN GROUP (ORDER BY d.seconds))::numeric, 3) AS p95_duration_s
FROM sous.execution AS e
  -- NULL for executions not finished: aggregates skip them.
  CROSS JOIN LATERAL (SELECT extract(epoch FROM e.finished_at - e.created_at) AS seconds) AS d
GROUP BY e.recipe_name, e.recipe_version, e.status;

COMMENT ON VIEW reporting.execution_summary IS
  'Executions per recipe name, version and status: how many, when the oldest and newest were created, '
  'and how long the finished ones took (finished_at - created_at).';
COMMENT ON COLUMN reporting.execution_summary.finished IS
  'Executions of the group with a finished_at: the durations are computed over these only.';
COMMENT ON COLUMN reporting.execution_summary.avg_duration_s IS
  'Mean of finished_at - created_at in seconds over finished executions; NULL when none finished.';
COMMENT ON COLUMN reporting.execution_summary.p50_duration_s IS
  'Median duration in seconds (percentile_cont, interpolated) over finished executions.';
COMMENT ON COLUMN reporting.execution_summary.p95_duration_s IS
  '95th percentile duration in seconds (percentile_cont, interpolated) over finished executions.';

CREATE VIEW reporting.step_latency AS
SELECT
  a.capability,
  count(*) AS attempts,
  count(*) FILTER (WHERE a.status = 'completed') AS completed,
  count(*) FILTER (WHERE a.status = 'failed') AS failed,
  count(*) FILTER (WHERE a.status IN ('scheduled', 'running')) AS in_flight,
  count(*) FILTER (WHERE s.compensation) AS compensation_attempts,
  round((percentile_cont(0.5) WITHIN GROUP (ORDER BY t.queue_ms))::numeric, 3) AS p50_queue_ms,
  round((percentile_cont(0.95) WITHIN GROUP (ORDER BY t.queue_ms))::numeric, 3) AS p95_queue_ms,
  round((percentile_cont(0.99) WITHIN GROUP (ORDER BY t.queue_ms))::numeric, 3) AS p99_queue_ms,
  round((percentile_cont(0.5) WITHIN GROUP (ORDER BY t.run_ms))::numeric, 3) AS p50_run_ms,
  round((percentile_cont(0.95) WITHIN GROUP (ORDER BY t.run_ms))::numeric, 3) AS p95_run_ms,
  round((percentile_cont(0.99) WITHIN GROUP (ORDER BY t.run_ms))::numeric, 3) AS p99_run_ms
FROM sous.step_attempt AS a
  JOIN sous.step AS s ON s.execution_id = a.execution_id AND s.step_key = a.step_key
  -- NULL while the attempt has not started (queue) or not finished (run): percentile_cont skips NULLs.
  CROSS JOIN LATERAL (
    SELECT
      extract(epoch FROM a.started_at - a.scheduled_at) * 1000 AS queue_ms,
      extract(epoch FROM a.finished_at - a.started_at) * 1000 AS run_ms
  ) AS t
GROUP BY a.capability;

COMMENT ON VIEW reporting.step_latency IS
  'Task attempts per capability (compensations included): outcomes, and percentiles of the time spent '
  'waiting for a worker (queue) and working (run), in milliseconds.';
COMMENT ON COLUMN reporting.step_latency.in_flight IS
  'Attempts scheduled or running now: sent, with no reply yet.';
COMMENT ON COLUMN reporting.step_latency.compensation_attempts IS
  'Of the attempts, how many ran a compensation (undo) rather than a forward step.';
COMMENT ON COLUMN reporting.step_latency.p50_queue_ms IS
  'Median of started_at - scheduled_at in ms: time in the outbox and on Kafka until a worker took it. '
  'Over attempts that started.';
COMMENT ON COLUMN reporting.step_latency.p95_queue_ms IS '95th percentile queue time in ms (attempts that started).';
COMMENT ON COLUMN reporting.step_latency.p99_queue_ms IS '99th percentile queue time in ms (attempts that started).';
COMMENT ON COLUMN reporting.step_latency.p50_run_ms IS
  'Median of finished_at - started_at in ms: time a worker spent on it. Over attempts that started and finished.';
COMMENT ON COLUMN reporting.step_latency.p95_run_ms IS '95th percentile run time in ms (attempts that started and finished).';
COMMENT ON COLUMN reporting.step_latency.p99_run_ms IS '99th percentile run time in ms (attempts that started and finished).';

-- The threshold is a session setting, not a constant in the view: `SET sous.stuck_after =
-- '30 seconds'` (or ALTER ROLE / ALTER DATABASE ... SET) changes it without a migration.
-- An unset placeholder reads as NULL, one that was set and RESET reads as ''.
CREATE VIEW reporting.stuck_executions AS
WITH settings AS (
  SELECT coalesce(nullif(current_setting('sous.stuck_after', true), ''), '5 minutes')::interval AS stuck_after
)
SELECT
  e.id AS execution_id,
  e.recipe_name,
  e.recipe_version,
  e.status,
  verdict.reason,
  verdict.waiting_on,
  now() - e.updated_at AS idle_for,
  e.updated_at,
  e.created_at,
  settings.stuck_after
FROM sous.execution AS e
  CROSS JOIN settings
  -- The step keys behind each possible reason, NULL when there are none.
  CROSS JOIN LATERAL (
    SELECT
      array_agg(st.step_key ORDER BY st.step_key) FILTER (WHERE st.status = 'dead_lettered') AS dead_lettered,
      array_agg(st.step_key ORDER BY st.step_key)
        FILTER (WHERE st.status = 'open' AND st.kind = 'waitForSignal') AS waiting_for_signal,
      array_agg(st.step_key ORDER BY st.step_key) FILTER (WHERE st.status = 'retry_wait') AS retry_wait,
      array_agg(st.step_key ORDER BY st.step_key) FILTER (WHERE st.status = 'open' AND st.kind = 'sleep') AS sleeping,
      array_agg(st.step_key ORDER BY st.step_key)
        FILTER (WHERE st.status = 'open' AND st.kind = 'subRecipe') AS waiting_for_sub_recipe
    FROM sous.step AS st
    WHERE st.execution_id = e.id
  ) AS steps
  CROSS JOIN LATERAL (
    SELECT array_agg(DISTINCT a.step_key ORDER BY a.step_key) AS in_flight
    FROM sous.step_attempt AS a
    WHERE a.execution_id = e.id AND a.status IN ('scheduled', 'running')
  ) AS attempts
  -- The first reason that applies, in this order: what an operator should look at first.
  CROSS JOIN LATERAL (
    SELECT r.reason, r.waiting_on
    FROM (
      VALUES
        (1, 'paused', e.status = 'paused', '{}'::text[]),
        (2, 'dead_lettered', steps.dead_lettered IS NOT NULL, steps.dead_lettered),
        (3, 'waiting_for_signal', steps.waiting_for_signal IS NOT NULL, steps.waiting_for_signal),
        (4, 'retry_wait', steps.retry_wait IS NOT NULL, steps.retry_wait),
        (5, 'sleeping', steps.sleeping IS NOT NULL, steps.sleeping),
        (6, 'waiting_for_sub_recipe', steps.waiting_for_sub_recipe IS NOT NULL, steps.waiting_for_sub_recipe),
        (7, 'step_in_flight', attempts.in_flight IS NOT NULL, attempts.in_flight),
        (8, 'compensating', e.status = 'compensating', '{}'::text[]),
        (9, 'no_progress', true, '{}'::text[])
    ) AS r (priority, reason, applies, waiting_on)
    WHERE r.applies
    ORDER BY r.priority
    LIMIT 1
  ) AS verdict
WHERE e.status IN ('running', 'paused', 'compensating')
  AND e.updated_at < now() - settings.stuck_after;

COMMENT ON VIEW reporting.stuck_executions IS
  'Executions not finished (running, paused, compensating) that have not changed for longer than '
  'the setting sous.stuck_after (an interval, default 5 minutes), with the first reason that applies.';
COMMENT ON COLUMN reporting.stuck_executions.reason IS
  'First that applies: paused; dead_lettered (a step waits for an operator to reprocess its dead letter); '
  'waiting_for_signal; retry_wait; sleeping; waiting_for_sub_recipe; step_in_flight (an attempt sent, '
  'no reply); compensating; no_progress (none of these: nothing should be holding it).';
COMMENT ON COLUMN reporting.stuck_executions.waiting_on IS
  'Step keys behind the reason, sorted; empty for paused, compensating and no_progress.';
COMMENT ON COLUMN reporting.stuck_executions.idle_for IS 'now() - updated_at: how long nothing has happened.';
COMMENT ON COLUMN reporting.stuck_executions.stuck_after IS
  'The threshold applied: current_setting(''sous.stuck_after''), default 5 minutes.';

CREATE VIEW reporting.dead_letter_backlog AS
SELECT
  coalesce(d.capability, d.original_topic) AS capability,
  d.error_code,
  count(*) AS pending,
  min(d.ingested_at) AS oldest_ingested_at,
  max(d.ingested_at) AS newest_ingested_at
FROM sous.dead_letter AS d
WHERE d.status = 'pending'
GROUP BY coalesce(d.capability, d.original_topic), d.error_code;

COMMENT ON VIEW reporting.dead_letter_backlog IS
  'Dead letters waiting for an operator (status pending), by capability and error code. '
  'Reprocessed and discarded ones are not counted.';
COMMENT ON COLUMN reporting.dead_letter_backlog.capability IS
  'The capability of the dead-lettered command; the original topic when the record was not a command '
  '(a reply, an unparseable record).';

-- The connector's slot is `slot.name` in connectors/outbox-connector.json: sous_outbox.
-- Slot names are cluster-wide, so a second sous database in the same cluster needs
-- another name: `ALTER DATABASE <db> SET sous.outbox_slot = '<name>'`. Only a slot of
-- this database matches, so a database without one still gets its row, with NULLs.
CREATE VIEW reporting.outbox_lag AS
WITH wal AS (
  -- On a standby pg_current_wal_lsn() raises an error: use the replay position there.
  SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn
)
SELECT
  o.outbox_rows,
  s.slot_name,
  s.active,
  s.wal_status,
  pg_wal_lsn_diff(wal.lsn, s.confirmed_flush_lsn) AS unconfirmed_bytes,
  pg_wal_lsn_diff(wal.lsn, s.restart_lsn) AS retained_bytes
FROM (SELECT count(*) AS outbox_rows FROM sous.outbox) AS o
  CROSS JOIN wal
  LEFT JOIN pg_replication_slots AS s
    ON s.slot_name = coalesce(nullif(current_setting('sous.outbox_slot', true), ''), 'sous_outbox')
    AND s.database = current_database();

COMMENT ON VIEW reporting.outbox_lag IS
  'One row: committed rows in sous.outbox, and how far the connector''s replication slot '
  '(setting sous.outbox_slot, default sous_outbox) is behind. Slot columns are NULL without a slot.';
COMMENT ON COLUMN reporting.outbox_lag.outbox_rows IS
  'Committed rows in sous.outbox. Each row is deleted in the transaction that inserts it, so this is 0; '
  'more means a writer commits without deleting. Rows of transactions still open are not visible.';
COMMENT ON COLUMN reporting.outbox_lag.active IS 'Whether a consumer (Debezium) is connected to the slot now.';
COMMENT ON COLUMN reporting.outbox_lag.wal_status IS
  'reserved / extended / unreserved / lost (pg_replication_slots): lost means the slot is unusable.';
COMMENT ON COLUMN reporting.outbox_lag.unconfirmed_bytes IS
  'Bytes of WAL written since the position the connector confirmed (confirmed_flush_lsn): its lag.';
COMMENT ON COLUMN reporting.outbox_lag.retained_bytes IS
  'Bytes of WAL the server keeps for the slot (since restart_lsn): disk the slot holds on to.';

-- Filters on the counted types, so a minute with none of them has no row.
CREATE VIEW reporting.throughput_per_minute AS
SELECT
  date_trunc('minute', ev.created_at) AS minute,
  count(*) FILTER (WHERE ev.type = 'ExecutionStarted') AS executions_started,
  count(*) FILTER (WHERE ev.type = 'ExecutionCompleted') AS executions_completed,
  count(*) FILTER (WHERE ev.type = 'ExecutionFailed') AS executions_failed,
  count(*) FILTER (WHERE ev.type = 'ExecutionCancelled') AS executions_cancelled,
  count(*) FILTER (WHERE ev.type = 'StepCompleted') AS steps_completed,
  count(*) FILTER (WHERE ev.type = 'StepFailed') AS steps_failed,
  count(*) FILTER (WHERE ev.type = 'StepFailed' AND ev.data ->> 'retryAt' IS NULL) AS steps_failed_final
FROM sous.execution_event AS ev
WHERE ev.type IN (
  'ExecutionStarted', 'ExecutionCompleted', 'ExecutionFailed', 'ExecutionCancelled', 'StepCompleted', 'StepFailed'
)
GROUP BY date_trunc('minute', ev.created_at);

COMMENT ON VIEW reporting.throughput_per_minute IS
  'Per minute (event time, truncated): executions started, completed, failed and cancelled, steps completed '
  'and failed, counted from the event log. Minutes without any of these have no row.';
COMMENT ON COLUMN reporting.throughput_per_minute.minute IS
  'date_trunc(''minute'', created_at) of the events: the start of the minute.';
COMMENT ON COLUMN reporting.throughput_per_minute.steps_failed IS
  'StepFailed events: every failed attempt, including those that will be retried.';
COMMENT ON COLUMN reporting.throughput_per_minute.steps_failed_final IS
  'StepFailed events without a retry (no retryAt): steps that failed for good.';

-- The role. Roles belong to the cluster, not to a database, and this file runs once in
-- every sous database of a cluster: create the role only when it is missing, and take
-- a twin migrating another database at the same moment into account (the loser of that
-- race gets unique_violation on pg_authid). Creating a role needs CREATEROLE, which the
-- owner of a sous database often lacks (the stack's `sous` has LOGIN REPLICATION only):
-- then an administrator creates the role once per cluster, and this migration grants.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sous_reporting') THEN
    IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
      BEGIN
        CREATE ROLE sous_reporting NOLOGIN;
        COMMENT ON ROLE sous_reporting IS 'Read-only access to the reporting views of sous (schema reporting).';
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL; -- created by a concurrent migration of another database
      END;
    ELSE
      RAISE WARNING USING
        MESSAGE = format('role sous_reporting does not exist and %I may not create roles: reporting views '
          'are created but granted to no one', current_user),
        HINT = 'As a superuser: CREATE ROLE sous_reporting NOLOGIN; then, in this database: GRANT USAGE ON SCHEMA '
          'reporting TO sous_reporting; GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO sous_reporting;';
    END IF;
  END IF;

  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sous_reporting') THEN
    GRANT USAGE ON SCHEMA reporting TO sous_reporting;
    GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO sous_reporting;
    -- Views added to the schema by later migrations (run by the same owner) are readable too.
    ALTER DEFAULT PRIVILEGES IN SCHEMA reporting GRANT SELECT ON TABLES TO sous_reporting;
  END IF;
END
$$;
-- Nothing is granted on the schema sous: sous_reporting reads the tables only through
-- the views. (The schema is created by the migrator without any grant to PUBLIC.)
