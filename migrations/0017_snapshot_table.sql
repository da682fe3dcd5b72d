-- The state snapshot leaves the execution row. 0010 kept it in sous.execution.state and
-- relied on toast_tuple_target to move it out of line, but PostgreSQL moves values out of
-- line only for rows over ~2 KB: an ordinary state (about 1 KB) stayed inline, and since
-- wal_level = logical logs every new row version whole, each per-step update of the row
-- logged the whole state again (894 bytes of WAL per update measured at saturation, of
-- 4.6 KB per step). See docs/state-snapshots.md.

-- A snapshot: the state after event `seq`, written every N events (the control plane's
-- SOUS_STATE_SNAPSHOT_EVERY); between snapshots the state is the snapshot with the later
-- events replayed. An execution with no row here and no state on its execution row has
-- none yet: its state is the replay of its whole log, at most N events.
CREATE TABLE sous.execution_snapshot (
  execution_id uuid PRIMARY KEY REFERENCES sous.execution (id),
  seq integer NOT NULL CHECK (seq >= 1),
  state jsonb NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now()
);

-- Rows written from now on leave sous.execution.state NULL and keep state_seq = the seq of
-- their newest snapshot (0: none). Rows written before keep their snapshot there (at
-- state_seq, or at last_seq before 0010) until their first snapshot in the new table, which
-- clears it: executions running across the upgrade continue from it unchanged.
ALTER TABLE sous.execution ALTER COLUMN state DROP NOT NULL;
