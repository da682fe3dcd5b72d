-- Less written per step (issue 11: WAL per step), after 0023.
--
-- 1. A step's output and an execution's output and error are stored as json (their
--    text), not jsonb, as 0021 did for the outbox payload and the event data: they are
--    written whole and read whole, and nothing queries inside them. A step row is
--    rewritten when its step finishes, and the execution row on every decision (its
--    output and error are JSON null until it ends), and with wal_level = logical every
--    byte of the new row goes to the WAL: jsonb's `{"n": 10}` takes 25 bytes, the text
--    9; its null 9, the text 5. The text is kept as the control plane wrote it (compact).
--    The errors of steps and attempts stay jsonb: sous.step_attempt unites the step
--    row's with sous.superseded_attempt's, and they are written only when a step fails.
--
--    Changing a column's type rewrites its table under an ACCESS EXCLUSIVE lock, for as
--    long as the copy takes (docs/state-snapshots.md gives the time measured here);
--    decisions wait for it and go on.
--
-- 2. sous.outbox.created_at is dropped: nothing reads it (the connector routes by the
--    other columns, connectors/outbox-connector.json, and every row is deleted by the
--    transaction that inserts it), and it cost every command 8 bytes of WAL.

ALTER TABLE sous.step ALTER COLUMN output TYPE json USING output::json;
ALTER TABLE sous.execution
  ALTER COLUMN output TYPE json USING output::json,
  ALTER COLUMN error TYPE json USING error::json;
ALTER TABLE sous.outbox DROP COLUMN created_at;
