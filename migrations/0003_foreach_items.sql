-- A forEach's item data, stored apart from the execution state: the state holds only
-- item references (indices in per-step buckets), so a decision over a list of 10,000
-- items does not rewrite the list. Rows are written once, when the forEach opens.
CREATE TABLE sous.foreach_item (
  execution_id uuid NOT NULL REFERENCES sous.execution (id),
  step_key text NOT NULL,
  item_index integer NOT NULL CHECK (item_index >= 0),
  data jsonb NOT NULL,
  PRIMARY KEY (execution_id, step_key, item_index)
);
