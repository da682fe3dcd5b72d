-- The transactional outbox. A row is inserted in the same transaction as the state
-- change that produces it and deleted again before that transaction commits: Debezium
-- reads the insert from the WAL, so the table itself stays empty and never needs pruning.
-- Debezium's Outbox Event Router sends each row to the topic the row names, keyed by
-- aggregate_id, with id, event_type, aggregate_type and the header columns as Kafka headers.
CREATE TABLE sous.outbox (
  id uuid PRIMARY KEY,
  aggregate_type text NOT NULL CHECK (aggregate_type <> ''),
  aggregate_id text NOT NULL CHECK (aggregate_id <> ''),
  event_type text NOT NULL CHECK (event_type <> ''),
  -- Kafka's own rule for topic names: a bad one would stop the connector for every row.
  topic text NOT NULL CHECK (topic ~ '^[a-zA-Z0-9._-]{1,249}$' AND topic NOT IN ('.', '..')),
  payload jsonb NOT NULL,
  traceparent text,
  correlation_id text,
  idempotency_key text,
  -- Further string headers, sent as one JSON header (sous-headers).
  headers jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(headers) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Only inserts are published: the delete that follows each insert is never decoded.
-- The connector uses this publication as is (publication.autocreate.mode=disabled).
CREATE PUBLICATION sous_outbox FOR TABLE sous.outbox WITH (publish = 'insert');
