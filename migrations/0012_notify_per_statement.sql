-- One NOTIFY per statement instead of one per row (issue 11). The row trigger of 0004
-- built a JSON object and queued a notification for every execution row a decision batch
-- wrote (up to a few hundred per transaction). A statement trigger sees the batch's rows
-- in a transition table and announces them together: a JSON array of the changes, split
-- into payloads under PostgreSQL's 8000-byte limit. Listeners read either form (see
-- src/api/notifications.ts). Still delivered on commit only.
DROP TRIGGER execution_notify ON sous.execution;

CREATE FUNCTION sous.notify_execution_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('sous_execution', '[' || string_agg(entry, ',') || ']')
  FROM (
    SELECT entry, sum(length(entry) + 1) OVER (ORDER BY id) / 7000 AS chunk
    FROM (
      SELECT c.id, json_build_object('id', c.id, 'status', c.status, 'recipe', c.recipe_name,
        'version', c.recipe_version, 'seq', c.last_seq)::text AS entry
      FROM changed c
    ) e
  ) chunked
  GROUP BY chunk;
  RETURN NULL;
END;
$$;

-- A trigger with a transition table names one event: one for inserts, one for updates.
CREATE TRIGGER execution_notify_insert
  AFTER INSERT ON sous.execution REFERENCING NEW TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION sous.notify_execution_changes();
CREATE TRIGGER execution_notify_update
  AFTER UPDATE ON sous.execution REFERENCING NEW TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION sous.notify_execution_changes();

-- The row function is no longer used.
DROP FUNCTION sous.notify_execution_change();
