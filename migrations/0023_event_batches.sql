-- One event row per decision (issue 11: WAL per step).
--
-- A decision appends two events or more to its execution's log (a step completed, the
-- next one scheduled), and each was a row of its own with a primary-key entry: about
-- 80 bytes of tuple and WAL-record header and 80 of index entry per event, on top of the
-- event's text. From here on the events one batch of decisions appends to one execution
-- are one row of sous.execution_event_batch: a json array of the events, numbered from
-- first_seq to last_seq. About one row and one index entry fewer per step.
--
-- * The rows written before this stay where they are (nothing is copied or rewritten):
--   the table is renamed sous.execution_event_row. An execution running across the
--   upgrade has its first events there and the rest in batches; every reader reads both.
-- * sous.execution_event keeps its name and columns as a view of both, one row per
--   event, so SQL written against it (reports, analysts' queries) keeps working. The
--   views that read the table are redefined to read this view, from their own text.
-- * sous.execution_events(id, after, upto): an execution's events with after < seq <=
--   upto, for the engine and the API. It finds the batches through the primary key
--   (execution_id, last_seq) and unnests only those, so a long execution's next decision
--   does not unnest its whole history, as a filter on the view's seq would.
-- * The primary key refuses the same batch appended twice (a retried decision appends
--   the same events at the same seqs). That no two batches overlap is what the
--   execution's lock (0021) and its last_seq give every decision, as they gave it before.
-- * Both tables stay append-only but for the retention purge (0009).

ALTER TABLE sous.execution_event RENAME TO execution_event_row;
ALTER INDEX sous.execution_event_pkey RENAME TO execution_event_row_pkey;
ALTER INDEX sous.execution_event_created_brin RENAME TO execution_event_row_created_brin;
ALTER TRIGGER execution_event_append_only ON sous.execution_event_row RENAME TO execution_event_row_append_only;
COMMENT ON TABLE sous.execution_event_row IS
  'Events written one per row, before 0023. Read through sous.execution_event or sous.execution_events().';

CREATE TABLE sous.execution_event_batch (
  execution_id uuid NOT NULL,
  first_seq integer NOT NULL CHECK (first_seq > 0),
  last_seq integer NOT NULL,
  -- The first event's time; an event of another time keeps its "at" in its element.
  created_at timestamptz NOT NULL,
  -- The events, first_seq first: each an object with its "type" and the rest of the
  -- event but "at" when that is created_at (src/store/events.ts, storedBatch).
  events json NOT NULL,
  PRIMARY KEY (execution_id, last_seq),
  CHECK (last_seq >= first_seq)
);
COMMENT ON TABLE sous.execution_event_batch IS
  'The event log from 0023 on: the events one batch of decisions appended to one execution, seqs first_seq..last_seq. '
  'Read through sous.execution_event (a row per event) or sous.execution_events().';

-- Time windows over history (reporting_v2), as on the table before (0009).
CREATE INDEX execution_event_batch_created_brin ON sous.execution_event_batch
  USING brin (created_at) WITH (pages_per_range = 32, autosummarize = on);

CREATE OR REPLACE FUNCTION sous.refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('sous.retention_purge', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION '%.% is append-only (% refused)', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
    USING HINT = 'Only the retention purge deletes events (src/store/retention.ts).';
END;
$$;
CREATE TRIGGER execution_event_batch_append_only
  BEFORE UPDATE OR DELETE ON sous.execution_event_batch
  FOR EACH ROW EXECUTE FUNCTION sous.refuse_event_change();

-- A row per event, as the table had them. `data` is what it was: the event without its
-- type and, unless it differs from created_at, its time. created_at of an event from a
-- batch is the batch's (the decision's) time.
CREATE VIEW sous.execution_event AS
SELECT r.execution_id, r.seq, r.type, r.data, r.created_at
FROM sous.execution_event_row AS r
UNION ALL
SELECT b.execution_id, b.first_seq + (x.n - 1)::integer, x.event ->> 'type', (x.event::jsonb - 'type')::json,
  b.created_at
FROM sous.execution_event_batch AS b
CROSS JOIN LATERAL json_array_elements(b.events) WITH ORDINALITY AS x(event, n);
COMMENT ON VIEW sous.execution_event IS
  'The event log, a row per event: sous.execution_event_row (before 0023) and sous.execution_event_batch unnested.';

-- An execution's events with after_seq < seq <= upto_seq, unordered (callers order by
-- seq). `data` is the stored JSON: for a batch's event its whole element, type included;
-- src/store/events.ts (eventJson) puts the columns under it. SQL and not STRICT, so the
-- planner inlines it into the caller's query.
CREATE FUNCTION sous.execution_events(execution_id uuid, after_seq integer, upto_seq integer)
RETURNS TABLE (seq integer, type text, data json, created_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT r.seq, r.type, r.data, r.created_at
  FROM sous.execution_event_row AS r
  WHERE r.execution_id = $1 AND r.seq > $2 AND r.seq <= $3
  UNION ALL
  SELECT e.seq, e.event ->> 'type', e.event, b.created_at
  FROM sous.execution_event_batch AS b
  CROSS JOIN LATERAL (
    SELECT b.first_seq + (x.n - 1)::integer AS seq, x.event
    FROM json_array_elements(b.events) WITH ORDINALITY AS x(event, n)
  ) AS e
  WHERE b.execution_id = $1 AND b.last_seq > $2 AND b.first_seq <= $3 AND e.seq > $2 AND e.seq <= $3
$$;
COMMENT ON FUNCTION sous.execution_events(uuid, integer, integer) IS
  'An execution''s events with after_seq < seq <= upto_seq (0023): reads only the batches that hold them.';

-- Views that read the table now read the view: each is replaced by its own definition
-- naming sous.execution_event, as 0022 did for sous.step_attempt. Printed with only
-- pg_catalog on the search path, so every table name in the text is schema-qualified.
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
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = 'sous.execution_event_row'::regclass
      AND r.ev_class <> 'sous.execution_event'::regclass
  LOOP
    definition := regexp_replace(pg_get_viewdef(dependent), '\msous\.execution_event_row\M', 'sous.execution_event', 'g');
    EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', dependent, definition);
  END LOOP;
  PERFORM set_config('search_path', search_path_before, true);
END
$$;
