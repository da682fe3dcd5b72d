-- A step's current attempt lives on its step row; only attempts a later attempt of their
-- step replaced (retries, operator retries) have a row of their own (issue 11: WAL per
-- step, docs/state-snapshots.md).
--
-- Every step wrote two rows twice: the step row and its attempt's row, each inserted when
-- the step was scheduled and updated when it finished, and an index entry for each. The
-- attempt's row was 437 bytes of WAL per step (two heap records and a primary-key entry)
-- for what the step row could carry in about 150 more: its id, capability, region,
-- status, worker, error and times. An earlier attempt is written once, when the attempt
-- that replaces it is scheduled (store/attempts.ts), with every column as it ended.
--
-- sous.step_attempt becomes a view with the columns the table had: the attempts that were
-- replaced (sous.superseded_attempt, the table renamed) and the current attempt of every
-- step that has one. What read the table reads the view. The views built on the table
-- (the reporting views, and any an analyst made) are redefined here on the view, with
-- their own text, so their columns, grants and dependents stay.

ALTER TABLE sous.step
  ADD COLUMN attempt_id uuid,
  ADD COLUMN capability text,
  ADD COLUMN region text,
  ADD COLUMN attempt_status text CONSTRAINT step_current_attempt_status_check CHECK (
    attempt_status IN ('scheduled', 'running', 'dead_lettered', 'completed', 'failed', 'cancelled')
  ),
  ADD COLUMN worker_id text,
  ADD COLUMN attempt_error jsonb,
  ADD COLUMN scheduled_at timestamptz,
  ADD COLUMN started_at timestamptz,
  ADD COLUMN attempt_finished_at timestamptz,
  ADD COLUMN last_heartbeat_at timestamptz;

COMMENT ON COLUMN sous.step.attempt_id IS
  'The current attempt (its step_execution_id); null for a step that never had one (a sub-recipe, a skip).';
COMMENT ON COLUMN sous.step.attempt_status IS 'The current attempt''s status, as sous.step_attempt.status.';
COMMENT ON COLUMN sous.step.attempt_error IS 'The current attempt''s error, as sous.step_attempt.error.';
COMMENT ON COLUMN sous.step.attempt_finished_at IS 'When the current attempt ended, as sous.step_attempt.finished_at.';

-- The reporting windows select attempts by scheduled_at, as on the attempt table (0009).
-- A BRIN index costs nothing per row inserted into a range not yet summarised, and
-- scheduled_at is set when an attempt starts, so the update that finishes it stays HOT.
CREATE INDEX step_scheduled_brin ON sous.step USING brin (scheduled_at) WITH (pages_per_range = 32, autosummarize = on);

ALTER TABLE sous.step_attempt RENAME TO superseded_attempt;
COMMENT ON TABLE sous.superseded_attempt IS
  'Attempts a later attempt of their step replaced, written once with every column as the attempt ended (0022). '
  'The current attempt of a step is on its sous.step row; sous.step_attempt shows both.';

-- The latest attempt of every step becomes the step's current attempt: what the
-- control plane keeps on the row from now on, so an attempt in flight across the upgrade
-- is finished on the row.
UPDATE sous.step AS s SET
  attempt_id = a.id, capability = a.capability, region = a.region, attempt_status = a.status, worker_id = a.worker_id,
  attempt_error = a.error, scheduled_at = a.scheduled_at, started_at = a.started_at, attempt_finished_at = a.finished_at,
  last_heartbeat_at = a.last_heartbeat_at
FROM (
  SELECT DISTINCT ON (execution_id, step_key) *
  FROM sous.superseded_attempt
  ORDER BY execution_id, step_key, attempt DESC, scheduled_at DESC
) AS a
WHERE a.execution_id = s.execution_id AND a.step_key = s.step_key;

DELETE FROM sous.superseded_attempt AS a USING sous.step AS s
WHERE s.execution_id = a.execution_id AND s.attempt_id = a.id;

CREATE VIEW sous.step_attempt AS
SELECT id, execution_id, step_key, attempt, capability, input, region, status, worker_id, error, scheduled_at,
  started_at, finished_at, last_heartbeat_at
FROM sous.superseded_attempt
UNION ALL
SELECT s.attempt_id, s.execution_id, s.step_key, s.attempts, s.capability, NULL::jsonb, s.region, s.attempt_status,
  s.worker_id, s.attempt_error, s.scheduled_at, s.started_at, s.attempt_finished_at, s.last_heartbeat_at
FROM sous.step AS s
WHERE s.attempt_id IS NOT NULL;

COMMENT ON VIEW sous.step_attempt IS
  'Every attempt of every step: the superseded ones (sous.superseded_attempt) and each step''s current one (sous.step).';

-- Views that read the table now read the view: each is replaced by its own definition
-- naming sous.step_attempt. Printed with only pg_catalog on the search path, so every
-- table name in the text is schema-qualified and the replacement matches exactly.
DO $$
DECLARE
  dependent regclass;
  definition text;
  search_path_before text := current_setting('search_path');
BEGIN
  PERFORM set_config('search_path', 'pg_catalog', true);
  FOR dependent IN
    SELECT DISTINCT r.ev_class::regclass
    FROM pg_depend AS d JOIN pg_rewrite AS r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = 'sous.superseded_attempt'::regclass
      AND r.ev_class <> 'sous.superseded_attempt'::regclass AND r.ev_class <> 'sous.step_attempt'::regclass
  LOOP
    definition := regexp_replace(pg_get_viewdef(dependent), '\msous\.superseded_attempt\M', 'sous.step_attempt', 'g');
    EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', dependent, definition);
  END LOOP;
  PERFORM set_config('search_path', search_path_before, true);
END
$$;
