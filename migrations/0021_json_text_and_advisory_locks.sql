-- Two changes to what every step writes (issue 11: WAL per step).
--
-- 1. The outbox payload and the event data are stored as json (their text), not jsonb.
--    Both are written once and read back whole: nothing queries inside them but the one
--    reporting filter below, which json serves as well (->>). jsonb's binary form is
--    larger than the compact text sous writes (a step command: 399 against 337 bytes; a
--    StepScheduled event's data: 262 against 209), and with wal_level = logical every
--    byte of a row is written to the WAL too: about 160 bytes less WAL per step. The text
--    is kept as written, so Kafka gets the command exactly as the control plane built it
--    (jsonb printed it again, with a space after every colon and comma).
--
--    Rewriting execution_event holds its lock for as long as the copy takes (about a
--    second per 100,000 events here); decisions wait for it and go on. The reporting
--    view that reads the data is pointed away from the column for the change and back
--    (CREATE OR REPLACE, in this one transaction), so its grants and any view an
--    analyst built on it stay.
--
-- 2. sous.execution_lock_key: the key of an execution's advisory lock. A decision locks
--    its executions with pg_advisory_xact_lock instead of SELECT ... FOR UPDATE: a row
--    lock writes a LOCK record to the WAL (57 bytes per step) and dirties the page; an
--    advisory lock writes nothing. Every path that changes or deletes an execution's rows
--    takes this lock (store/executions.ts, store/retention.ts, store/consistency.ts).
--    The key is the uuid's last 64 bits (random in a UUIDv7); two executions sharing a
--    key only wait for each other. sous.lock_execution_heads takes a decision's locks and
--    reads the heads in one round trip: a VOLATILE function's statements each take a
--    fresh snapshot, so the read sees what the lock's previous holder committed.

CREATE OR REPLACE VIEW reporting.throughput_per_minute AS
SELECT
  date_trunc('minute', ev.created_at) AS minute,
  count(*) FILTER (WHERE ev.type = 'ExecutionStarted') AS executions_started,
  count(*) FILTER (WHERE ev.type = 'ExecutionCompleted') AS executions_completed,
  count(*) FILTER (WHERE ev.type = 'ExecutionFailed') AS executions_failed,
  count(*) FILTER (WHERE ev.type = 'ExecutionCancelled') AS executions_cancelled,
  count(*) FILTER (WHERE ev.type = 'StepCompleted') AS steps_completed,
  count(*) FILTER (WHERE ev.type = 'StepFailed') AS steps_failed,
  -- For the type change only: replaced again below, before this transaction commits.
  count(*) FILTER (WHERE false) AS steps_failed_final
FROM sous.execution_event AS ev
WHERE ev.type IN (
  'ExecutionStarted', 'ExecutionCompleted', 'ExecutionFailed', 'ExecutionCancelled', 'StepCompleted', 'StepFailed'
)
GROUP BY date_trunc('minute', ev.created_at);

ALTER TABLE sous.execution_event ALTER COLUMN data TYPE json USING data::json;
ALTER TABLE sous.outbox ALTER COLUMN payload TYPE json USING payload::json;

-- As 0005_reporting.sql defined it.
CREATE OR REPLACE VIEW reporting.throughput_per_minute AS
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

CREATE FUNCTION sous.execution_lock_key(execution_id uuid) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ('x' || right(replace(execution_id::text, '-', ''), 16))::bit(64)::bigint;

COMMENT ON FUNCTION sous.execution_lock_key(uuid) IS
  'The key of the transaction-level advisory lock that serialises the decisions on an execution (0021).';

CREATE FUNCTION sous.lock_execution_heads(execution_ids uuid[])
RETURNS TABLE (
  id uuid, status text, recipe_name text, recipe_version integer, last_seq integer, state_seq integer,
  written_by uuid, traceparent text, reply_topic text
)
LANGUAGE sql VOLATILE
AS $$
  -- In key order, so two transactions locking overlapping sets queue instead of deadlocking.
  SELECT count(pg_advisory_xact_lock(k.key)) FROM (
    SELECT DISTINCT sous.execution_lock_key(i) AS key FROM unnest(execution_ids) AS i ORDER BY 1
  ) AS k;
  SELECT e.id, e.status, e.recipe_name, e.recipe_version, e.last_seq, coalesce(e.state_seq, e.last_seq),
    e.written_by, e.traceparent, e.reply_topic
  FROM sous.execution AS e WHERE e.id = ANY(execution_ids);
$$;

COMMENT ON FUNCTION sous.lock_execution_heads(uuid[]) IS
  'Takes the executions'' advisory locks (in key order, until the transaction ends), then reads their heads.';
