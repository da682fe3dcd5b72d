-- The shard registry, visible waits and reporting version 3 (issue 14).
--
-- 1. sous.shard mirrors the control planes' live view of the registry topic (sous.shards)
--    for SQL: every worker process is a shard. The topic is the truth; this table is a
--    copy each control plane refreshes, so operators and analysts can join it.
-- 2. sous.waiting_command holds the command of a step no live shard can take (none serves
--    the capability, none in the step's region, none at the contract it asks for, or all
--    draining), written instead of the outbox row in the decision's transaction; the
--    control plane moves it to the outbox, in one transaction, once a shard can take it.
-- 3. reporting_v3: version 2 with a new reason in stuck_executions (waiting_for_shard)
--    and the new view shard_health. Versions 1 and 2 stay as they are.

CREATE TABLE sous.shard (
  shard_id text PRIMARY KEY,
  service text NOT NULL,
  instance text NOT NULL,
  incarnation text NOT NULL,
  region text,
  -- [{"name": "payments.charge", "version": 2}, ...]
  capabilities jsonb NOT NULL,
  health text NOT NULL CHECK (health IN ('healthy', 'degraded', 'draining', 'gone')),
  reason text,
  in_flight integer NOT NULL,
  concurrency integer NOT NULL,
  heartbeat_interval_ms integer NOT NULL,
  first_seen_at timestamptz NOT NULL,
  last_heartbeat_at timestamptz NOT NULL,
  gone_at timestamptz,
  drain_requested_at timestamptz,
  drain_requested_by text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE sous.shard IS
  'Mirror of the shard registry (Kafka topic sous.shards) as the control planes see it; gone shards are kept a day.';

CREATE TABLE sous.waiting_command (
  -- The attempt's step_execution_id, also the outbox row id it will have.
  id uuid PRIMARY KEY,
  execution_id uuid NOT NULL,
  step_key text NOT NULL,
  capability text NOT NULL,
  region text,
  contract_min integer,
  contract_max integer,
  reason_code text NOT NULL
    CHECK (reason_code IN ('no_shard', 'no_shard_in_region', 'no_matching_contract', 'all_draining')),
  reason text NOT NULL,
  since timestamptz NOT NULL DEFAULT now(),
  -- The outbox row, less its topic (chosen when a shard can take it).
  aggregate_type text NOT NULL,
  aggregate_id text NOT NULL,
  event_type text NOT NULL,
  payload jsonb NOT NULL,
  headers jsonb NOT NULL,
  traceparent text,
  correlation_id text,
  idempotency_key text
);
CREATE INDEX waiting_command_execution ON sous.waiting_command (execution_id);
COMMENT ON TABLE sous.waiting_command IS
  'Commands of steps no live shard can take yet, with the reason; sent (moved to the outbox) once one can.';

-- ---- reporting_v3 -------------------------------------------------------------------

CREATE SCHEMA reporting_v3;
COMMENT ON SCHEMA reporting_v3 IS
  'Reporting version 3 (docs/reporting.md): version 2 plus shard_health and the waiting_for_shard reason.';

CREATE VIEW reporting_v3.shard_health AS
SELECT
  s.shard_id,
  s.service,
  s.instance,
  s.region,
  s.health,
  s.reason,
  (SELECT array_agg(c ->> 'name' || '@' || (c ->> 'version') ORDER BY c ->> 'name') FROM jsonb_array_elements(s.capabilities) c)
    AS capabilities,
  s.in_flight,
  s.concurrency,
  s.last_heartbeat_at,
  now() - s.last_heartbeat_at AS silent_for,
  s.first_seen_at,
  s.gone_at,
  s.drain_requested_at,
  s.drain_requested_by
FROM sous.shard AS s;
COMMENT ON VIEW reporting_v3.shard_health IS
  'Every shard (worker process) the control planes know: live ones and those gone in the last day.';
COMMENT ON COLUMN reporting_v3.shard_health.health IS
  'healthy, degraded (takes work only where no healthy shard can), draining (takes no new work), gone (left or silent past the timeout).';
COMMENT ON COLUMN reporting_v3.shard_health.capabilities IS 'name@contract-version of each capability it serves, sorted.';
COMMENT ON COLUMN reporting_v3.shard_health.in_flight IS 'Commands it was running at its last heartbeat (out of concurrency).';
COMMENT ON COLUMN reporting_v3.shard_health.silent_for IS 'now() - last_heartbeat_at.';

-- As version 2, with the reason waiting_for_shard (priority 6.5: before sub-recipes and
-- in-flight steps, since no worker will ever take those steps until a shard appears).
CREATE VIEW reporting_v3.stuck_executions AS
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
  settings.stuck_after,
  waits.wait_reasons
FROM sous.execution AS e
  CROSS JOIN settings
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
  CROSS JOIN LATERAL (
    SELECT
      array_agg(w.step_key ORDER BY w.step_key) AS waiting_for_shard,
      array_agg(w.step_key || ': ' || w.reason ORDER BY w.step_key) AS wait_reasons
    FROM sous.waiting_command AS w
    WHERE w.execution_id = e.id
  ) AS waits
  CROSS JOIN LATERAL (
    SELECT r.reason, r.waiting_on
    FROM (
      VALUES
        (1, 'paused', e.status = 'paused', '{}'::text[]),
        (2, 'dead_lettered', steps.dead_lettered IS NOT NULL, steps.dead_lettered),
        (3, 'waiting_for_signal', steps.waiting_for_signal IS NOT NULL, steps.waiting_for_signal),
        (4, 'retry_wait', steps.retry_wait IS NOT NULL, steps.retry_wait),
        (5, 'sleeping', steps.sleeping IS NOT NULL, steps.sleeping),
        (6, 'waiting_for_shard', waits.waiting_for_shard IS NOT NULL, waits.waiting_for_shard),
        (7, 'waiting_for_sub_recipe', steps.waiting_for_sub_recipe IS NOT NULL, steps.waiting_for_sub_recipe),
        (8, 'step_in_flight', attempts.in_flight IS NOT NULL, attempts.in_flight),
        (9, 'compensating', e.status = 'compensating', '{}'::text[]),
        (10, 'no_progress', true, '{}'::text[])
    ) AS r (priority, reason, applies, waiting_on)
    WHERE r.applies
    ORDER BY r.priority
    LIMIT 1
  ) AS verdict
WHERE e.status IN ('running', 'paused', 'compensating')
  AND e.updated_at < now() - settings.stuck_after;
COMMENT ON VIEW reporting_v3.stuck_executions IS
  'As reporting_v2.stuck_executions, with the reason waiting_for_shard and the column wait_reasons.';
COMMENT ON COLUMN reporting_v3.stuck_executions.reason IS
  'First that applies: paused; dead_lettered; waiting_for_signal; retry_wait; sleeping; waiting_for_shard (a step '
  'no live shard can take: none serves it, none in its region, none at its contract, or all draining); '
  'waiting_for_sub_recipe; step_in_flight; compensating; no_progress.';
COMMENT ON COLUMN reporting_v3.stuck_executions.wait_reasons IS
  '"<step key>: <why>" for each step waiting for a shard, NULL when none does.';

CREATE VIEW reporting_v3.dead_letter_backlog AS
SELECT capability, error_code, pending, oldest_ingested_at, newest_ingested_at
FROM reporting_v2.dead_letter_backlog;
COMMENT ON VIEW reporting_v3.dead_letter_backlog IS 'As reporting_v2.dead_letter_backlog.';

CREATE VIEW reporting_v3.outbox_lag AS
SELECT outbox_rows, slot_name, active, wal_status, unconfirmed_bytes, retained_bytes
FROM reporting_v2.outbox_lag;
COMMENT ON VIEW reporting_v3.outbox_lag IS 'As reporting_v2.outbox_lag.';

DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sous_reporting') THEN
    GRANT USAGE ON SCHEMA reporting_v3 TO sous_reporting;
    GRANT SELECT ON ALL TABLES IN SCHEMA reporting_v3 TO sous_reporting;
    ALTER DEFAULT PRIVILEGES IN SCHEMA reporting_v3 GRANT SELECT ON TABLES TO sous_reporting;
  ELSE
    RAISE WARNING USING
      MESSAGE = 'role sous_reporting does not exist: reporting_v3 is created but granted to no one',
      HINT = 'As a superuser: CREATE ROLE sous_reporting NOLOGIN; then, in this database: GRANT USAGE ON SCHEMA '
        'reporting_v3 TO sous_reporting; GRANT SELECT ON ALL TABLES IN SCHEMA reporting_v3 TO sous_reporting;';
  END IF;
END
$$;
