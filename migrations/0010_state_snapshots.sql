-- The execution state stops being rewritten on every step. The event log is the truth;
-- sous.execution.state becomes a snapshot of the state after event `state_seq`, written
-- when the execution starts, when it finishes, and every N events in between (the
-- control plane's SOUS_STATE_SNAPSHOT_EVERY). A decision's state is the snapshot with the
-- events after it replayed, or the control plane's cached copy when the row still carries
-- the token (`written_by`) of the decision that cached it. See docs/state-snapshots.md.

-- The seq of the event the stored state includes. NULL on rows written before this
-- migration: their state was rewritten with every event, so it is at last_seq. Running
-- executions continue from there.
ALTER TABLE sous.execution ADD COLUMN state_seq integer;

-- A fresh id per committed decision batch that wrote the row. A control plane caches the
-- state it computed under that id; a row that carries another id (another process
-- decided, or the batch that cached it never committed) makes it rebuild from the log.
ALTER TABLE sous.execution ADD COLUMN written_by uuid;

-- Per-step updates now leave the state unchanged: keep it (and the input) out of line, so
-- those HOT updates copy an 18-byte TOAST pointer instead of the whole compressed state
-- (wal_level = logical logs every new row version in full). Measured: an update of one
-- column of a row with a 3.8 KB state wrote 1,536 bytes of WAL inline, 200 out of line.
ALTER TABLE sous.execution SET (toast_tuple_target = 128);
