-- Retention and reporting over a time window (issue 11, item 4).
--
-- 1. Finished executions older than their retention are purged with all their rows by a
--    graphile-worker cron task (src/control-plane/retention.ts, SQL in
--    src/store/retention.ts). The event log stays append-only for everything else.
-- 2. Indexes that let the purge and the windowed reports find their rows without
--    scanning history, chosen to add next to nothing to the per-step write path.
-- 3. reporting_v2: the reporting views as a versioned contract, the history ones as
--    functions of a time window (docs/reporting.md). The views of `reporting` (v1) are
--    left exactly as they are: analysts' saved queries depend on them.

-- ---- The event log: append-only, except for a retention purge --------------------
--
-- The purge announces itself with a transaction-local setting
-- (set_config('sous.retention_purge', 'on', true)): it ends with the transaction, so it
-- cannot leak into the next user of a pooled connection, and it costs no lock. The
-- alternatives take more: ALTER TABLE ... DISABLE TRIGGER takes an ACCESS EXCLUSIVE lock
-- on the table every writer needs, and session_replication_role = replica needs a
-- superuser and skips the foreign-key triggers too. The guard is against mistakes, not
-- against the table's owner (who may drop the trigger anyway): an UPDATE stays refused
-- always, and a DELETE without the setting too.
CREATE OR REPLACE FUNCTION sous.refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('sous.retention_purge', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'sous.execution_event is append-only (% refused)', TG_OP
    USING HINT = 'Only the retention purge deletes events (src/store/retention.ts).';
END;
$$;

-- ---- Indexes ----------------------------------------------------------------------

-- The purge's candidates: root executions (sub-recipes go with their root) that have
-- finished before a cutoff, per recipe name. An entry is written once, when an
-- execution finishes (that update changes status, so it is not HOT anyway); none of
-- these columns changes on a step, so per-step updates of the row stay HOT.
CREATE INDEX execution_retention ON sous.execution (recipe_name, finished_at)
  WHERE parent_execution_id IS NULL AND finished_at IS NOT NULL;

-- Time windows over history. BRIN, not B-tree: rows are appended in time order, so one
-- summary per range of 32 pages finds a window, and an insert costs no index entry (a
-- B-tree would add one per event, three events a step). autosummarize summarises a
-- filled range at once instead of at the next vacuum; an unsummarised range is always
-- read, which stays correct.
CREATE INDEX execution_event_created_brin ON sous.execution_event
  USING brin (created_at) WITH (pages_per_range = 32, autosummarize = on);
CREATE INDEX step_attempt_scheduled_brin ON sous.step_attempt
  USING brin (scheduled_at) WITH (pages_per_range = 32, autosummarize = on);
CREATE INDEX execution_created_brin ON sous.execution
  USING brin (created_at) WITH (pages_per_range = 32, autosummarize = on);
-- processed_message is keyed by random message ids and was never read but by that key:
-- the purge deletes the rows of purged executions within the time they ran.
CREATE INDEX processed_message_processed_brin ON sous.processed_message
  USING brin (processed_at) WITH (pages_per_range = 32, autosummarize = on);
-- Claim-check payloads are few (only inputs over maxInlinePayloadBytes): a B-tree entry
-- each is cheap, and the purge finds an execution's payloads without a scan.
CREATE INDEX payload_execution ON sous.payload (execution_id);

-- ---- reporting_v2 -------------------------------------------------------------------
--
-- The history reports become functions of a window [since, until): a view cannot take a
-- parameter, and a filter put on a view's output (WHERE minute >= ...) is applied after
-- the grouping, so the view would still read all history. The functions run with their
-- owner's rights (SECURITY DEFINER, as the views do), so sous_reporting needs no
-- privilege on the schema sous; search_path is pinned so a caller's objects cannot stand
-- in for the ones named here. EXECUTE is revoked from PUBLIC (functions get it by
-- default) and granted to sous_reporting below.
--
-- Point-in-time reports (stuck executions, dead-letter backlog, outbox lag) read only
-- what is open now, not history: v2 has them as views with the v1 columns.

CREATE SCHEMA reporting_v2;
COMMENT ON SCHEMA reporting_v2 IS
  'Reporting contract version 2 (docs/reporting.md): history reports as functions of a time window. '
  'Readable by the role sous_reporting. Version 1 (schema reporting) is unchanged.';

-- Executions created in the window, grouped as in v1.
CREATE FUNCTION reporting_v2.execution_summary(since timestamptz, until timestamptz DEFAULT now())
RETURNS TABLE (
  recipe_name text,
  recipe_version integer,
  status text,
  executions bigint,
  oldest_created_at timestamptz,
  newest_created_at timestamptz,
  finished bigint,
  avg_duration_s numeric,
  p50_duration_s numeric,
  p95_duration_s numeric
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT
    e.recipe_name,
    e.recipe_version,
    e.status,
    count(*),
    min(e.created_at),
    max(e.created_at),
    count(e.finished_at),
    round(avg(d.seconds), 3),
    round((percentile_cont(0.5) WITHIN GROUP (ORDER BY d.seconds))::numeric, 3),
    round((percentile_cont(0.95) WITHIN GROUP (ORDER BY d.seconds))::numeric, 3)
  FROM sous.execution AS e
    CROSS JOIN LATERAL (SELECT extract(epoch FROM e.finished_at - e.created_at) AS seconds) AS d
  WHERE e.created_at >= since AND e.created_at < until
  GROUP BY e.recipe_name, e.recipe_version, e.status
$$;
COMMENT ON FUNCTION reporting_v2.execution_summary(timestamptz, timestamptz) IS
  'reporting.execution_summary over the executions created in [since, until) (until defaults to now()).';

-- Attempts scheduled in the window, grouped as in v1 (with 0006's in_flight).
CREATE FUNCTION reporting_v2.step_latency(since timestamptz, until timestamptz DEFAULT now())
RETURNS TABLE (
  capability text,
  attempts bigint,
  completed bigint,
  failed bigint,
  in_flight bigint,
  compensation_attempts bigint,
  p50_queue_ms numeric,
  p95_queue_ms numeric,
  p99_queue_ms numeric,
  p50_run_ms numeric,
  p95_run_ms numeric,
  p99_run_ms numeric
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT
    a.capability,
    count(*),
    count(*) FILTER (WHERE a.status = 'completed'),
    count(*) FILTER (WHERE a.status = 'failed'),
    count(*) FILTER (WHERE a.status IN ('scheduled', 'running') AND s.status <> 'dead_lettered'),
    count(*) FILTER (WHERE s.compensation),
    round((percentile_cont(0.5) WITHIN GROUP (ORDER BY t.queue_ms))::numeric, 3),
    round((percentile_cont(0.95) WITHIN GROUP (ORDER BY t.queue_ms))::numeric, 3),
    round((percentile_cont(0.99) WITHIN GROUP (ORDER BY t.queue_ms))::numeric, 3),
    round((percentile_cont(0.5) WITHIN GROUP (ORDER BY t.run_ms))::numeric, 3),
    round((percentile_cont(0.95) WITHIN GROUP (ORDER BY t.run_ms))::numeric, 3),
    round((percentile_cont(0.99) WITHIN GROUP (ORDER BY t.run_ms))::numeric, 3)
  FROM sous.step_attempt AS a
    JOIN sous.step AS s ON s.execution_id = a.execution_id AND s.step_key = a.step_key
    CROSS JOIN LATERAL (
      SELECT
        extract(epoch FROM a.started_at - a.scheduled_at) * 1000 AS queue_ms,
        extract(epoch FROM a.finished_at - a.started_at) * 1000 AS run_ms
    ) AS t
  WHERE a.scheduled_at >= since AND a.scheduled_at < until
  GROUP BY a.capability
$$;
COMMENT ON FUNCTION reporting_v2.step_latency(timestamptz, timestamptz) IS
  'reporting.step_latency over the attempts scheduled in [since, until) (until defaults to now()).';

-- Events created in the window, per minute as in v1.
CREATE FUNCTION reporting_v2.throughput_per_minute(since timestamptz, until timestamptz DEFAULT now())
RETURNS TABLE (
  minute timestamptz,
  executions_started bigint,
  executions_completed bigint,
  executions_failed bigint,
  executions_cancelled bigint,
  steps_completed bigint,
  steps_failed bigint,
  steps_failed_final bigint
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT
    date_trunc('minute', ev.created_at),
    count(*) FILTER (WHERE ev.type = 'ExecutionStarted'),
    count(*) FILTER (WHERE ev.type = 'ExecutionCompleted'),
    count(*) FILTER (WHERE ev.type = 'ExecutionFailed'),
    count(*) FILTER (WHERE ev.type = 'ExecutionCancelled'),
    count(*) FILTER (WHERE ev.type = 'StepCompleted'),
    count(*) FILTER (WHERE ev.type = 'StepFailed'),
    count(*) FILTER (WHERE ev.type = 'StepFailed' AND ev.data ->> 'retryAt' IS NULL)
  FROM sous.execution_event AS ev
  WHERE ev.created_at >= since AND ev.created_at < until
    AND ev.type IN (
      'ExecutionStarted', 'ExecutionCompleted', 'ExecutionFailed', 'ExecutionCancelled', 'StepCompleted', 'StepFailed'
    )
  GROUP BY date_trunc('minute', ev.created_at)
$$;
COMMENT ON FUNCTION reporting_v2.throughput_per_minute(timestamptz, timestamptz) IS
  'reporting.throughput_per_minute over the events created in [since, until) (until defaults to now()).';

-- Point in time: the v1 views as they are, under the v2 names, so a dashboard moves to
-- reporting_v2 as a whole. Their columns are listed, not *, so a later change of v1
-- (there is none planned) could not change v2.
CREATE VIEW reporting_v2.stuck_executions AS
SELECT execution_id, recipe_name, recipe_version, status, reason, waiting_on, idle_for, updated_at, created_at,
  stuck_after
FROM reporting.stuck_executions;
COMMENT ON VIEW reporting_v2.stuck_executions IS 'As reporting.stuck_executions (v1): open executions idle too long.';

CREATE VIEW reporting_v2.dead_letter_backlog AS
SELECT capability, error_code, pending, oldest_ingested_at, newest_ingested_at
FROM reporting.dead_letter_backlog;
COMMENT ON VIEW reporting_v2.dead_letter_backlog IS 'As reporting.dead_letter_backlog (v1): pending dead letters.';

CREATE VIEW reporting_v2.outbox_lag AS
SELECT outbox_rows, slot_name, active, wal_status, unconfirmed_bytes, retained_bytes
FROM reporting.outbox_lag;
COMMENT ON VIEW reporting_v2.outbox_lag IS 'As reporting.outbox_lag (v1): outbox rows and replication slot lag.';

REVOKE ALL ON FUNCTION reporting_v2.execution_summary(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION reporting_v2.step_latency(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION reporting_v2.throughput_per_minute(timestamptz, timestamptz) FROM PUBLIC;

-- The role exists since 0005 unless the owner could not create it (then 0005 warned
-- how an administrator creates it and grants).
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sous_reporting') THEN
    GRANT USAGE ON SCHEMA reporting_v2 TO sous_reporting;
    GRANT SELECT ON ALL TABLES IN SCHEMA reporting_v2 TO sous_reporting;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA reporting_v2 TO sous_reporting;
    ALTER DEFAULT PRIVILEGES IN SCHEMA reporting_v2 GRANT SELECT ON TABLES TO sous_reporting;
    ALTER DEFAULT PRIVILEGES IN SCHEMA reporting_v2 GRANT EXECUTE ON FUNCTIONS TO sous_reporting;
  ELSE
    RAISE WARNING USING
      MESSAGE = 'role sous_reporting does not exist: reporting_v2 is created but granted to no one',
      HINT = 'As a superuser: CREATE ROLE sous_reporting NOLOGIN; then, in this database: GRANT USAGE ON SCHEMA '
        'reporting_v2 TO sous_reporting; GRANT SELECT ON ALL TABLES IN SCHEMA reporting_v2 TO sous_reporting; '
        'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA reporting_v2 TO sous_reporting;';
  END IF;
END
$$;
