-- Regions: a cross-region step goes through the control plane of the region it runs in
-- (docs/regions.md, "A step's round trip").
--
-- 1. sous.region_inbox: the commands (and cancels) this region's control plane received
--    from other regions through the relay, by attempt id. Inserting the row and the
--    command's outbox row (or its held command) in one transaction makes a redelivered
--    record change nothing: the relay, Kafka and a restart of this control plane may each
--    deliver it again. A cancel that arrives before its command leaves a 'cancelled' row,
--    so the command, when it comes, is not sent.
-- 2. sous.waiting_command.origin_region: a command held here for another region's
--    execution (no live shard of the capability in this region yet). Such a command has
--    no attempt row in this database: it wants sending as long as it is held (a cancel
--    deletes it).

CREATE TABLE sous.region_inbox (
  -- The attempt's step_execution_id (the home region's id).
  id uuid PRIMARY KEY,
  execution_id uuid NOT NULL,
  origin_region text NOT NULL,
  state text NOT NULL CHECK (state IN ('dispatched', 'held', 'cancelled')),
  received_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX region_inbox_received ON sous.region_inbox (received_at);
COMMENT ON TABLE sous.region_inbox IS
  'Commands and cancels received from other regions through the relay, by attempt id: each applied once.';

ALTER TABLE sous.waiting_command ADD COLUMN origin_region text;
COMMENT ON COLUMN sous.waiting_command.origin_region IS
  'Set for a command of another region''s execution (received through the relay): held here, no attempt row here.';
