-- Fewer index entries per step (issue 11: at most 6). Before this migration a step of a
-- 10-step recipe inserted about 8.8 index entries; three of them were in indexes no
-- statement needs.

-- step_attempt had three btree indexes: the primary key (id), (execution_id) and
-- (capability, scheduled_at). Every statement that reads attempts names their execution
-- (the decision's update, the API, verification, retention, the backlog's join), and
-- the reporting functions select attempts by time through the BRIN index on
-- scheduled_at; no statement reads by capability alone. One index, (execution_id, id),
-- serves them all and stays the primary key. Building it locks writes to the table for
-- as long as it takes (retention keeps the table to its window; on a large table run the
-- upgrade in a quiet moment).
CREATE UNIQUE INDEX step_attempt_execution_id ON sous.step_attempt (execution_id, id);
ALTER TABLE sous.step_attempt DROP CONSTRAINT step_attempt_pkey;
ALTER TABLE sous.step_attempt ADD CONSTRAINT step_attempt_pkey PRIMARY KEY USING INDEX step_attempt_execution_id;
DROP INDEX sous.step_attempt_execution;
DROP INDEX sous.step_attempt_capability;

-- The outbox row is inserted and deleted in the same transaction (Debezium reads the
-- insert from the WAL), and the delete now finds its rows by physical address (ctid),
-- so the table needs no index: ids are fresh UUIDv7s, unique by construction.
ALTER TABLE sous.outbox DROP CONSTRAINT outbox_pkey;
