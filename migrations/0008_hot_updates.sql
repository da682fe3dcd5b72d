-- Per-step writes become HOT (heap-only tuple) updates: every step rewrote its execution
-- row, its step row and its attempt row, and none of those updates were HOT, so each one
-- inserted a new entry into every index of the table (about 17 index insertions a step,
-- with their WAL). An update is HOT when it changes no indexed column and the new version
-- fits on the same page.

-- (status, updated_at) changed on every step (updated_at). Listing executions by status
-- needs status and the creation time, which never change while an execution runs; the
-- stuck-executions view filters the few open ones by status and reads updated_at from them.
DROP INDEX sous.execution_status_updated;
CREATE INDEX execution_status_created ON sous.execution (status, created_at);

-- Room on each page for the next version of a row. The execution row is rewritten on
-- every step (its old versions are pruned from the page as the next writes find it full);
-- step and attempt rows are written twice, scheduled then finished, and the finished
-- version is the larger (output, times), so half of each page is kept for it. Measured on
-- the 10-step bench: HOT share of step/attempt updates 48-55 % at fillfactor 85, see the
-- closing note of issue 11 for 50. Applies to pages written from now on.
ALTER TABLE sous.execution SET (fillfactor = 70);
ALTER TABLE sous.step SET (fillfactor = 50);
ALTER TABLE sous.step_attempt SET (fillfactor = 50);
