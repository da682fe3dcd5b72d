-- The rows every step writes no longer carry foreign keys: an event row to its execution,
-- a step row to its execution, an attempt row to its step. Each key ran a check per
-- inserted row (a lookup that locks the referenced row FOR KEY SHARE): four per step at
-- saturation. The attempt's check also logged a heap LOCK record on the step row (59
-- bytes of WAL per step, and a dirtied step page), even for a step row inserted a moment
-- before in the same transaction; the other two found the execution row already locked
-- by the decision and cost PostgreSQL's CPU only.
--
-- What the keys guarded is kept by the one path that writes these rows
-- (store/decisions.ts, commitDecision): it runs under the execution's row lock (taken
-- before anything is read), inserts a new execution before its events and steps, writes
-- step rows before their attempts, and deletes a forgotten step's attempts with it
-- (deleteForgottenSteps). A reply for an execution that is gone finds no row to lock and
-- writes nothing (ExecutionNotFoundError). Retention deletes an execution with all its
-- rows in one statement. verifyExecution compares the step and attempt rows with the
-- event log, so a row the log does not explain shows as a disagreement.
--
-- Issue 11; docs/state-snapshots.md. The keys of rows written once per forEach or per
-- snapshot (foreach_item, execution_snapshot) stay.
ALTER TABLE sous.step_attempt DROP CONSTRAINT IF EXISTS step_attempt_execution_id_step_key_fkey;
ALTER TABLE sous.step DROP CONSTRAINT IF EXISTS step_execution_id_fkey;
ALTER TABLE sous.execution_event DROP CONSTRAINT IF EXISTS execution_event_execution_id_fkey;
