-- Recipes, executions, their event log and the state tables projected from it.

-- Registered recipe versions are immutable: a new plan is a new version.
CREATE TABLE sous.recipe (
  name text NOT NULL CHECK (name ~ '^[a-z][a-z0-9._-]*$'),
  version integer NOT NULL CHECK (version > 0),
  checksum text NOT NULL,
  plan jsonb NOT NULL,
  -- The text as registered (YAML), when it came as text.
  source text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, version),
  -- Registering the same plan again returns the version it already has.
  UNIQUE (name, checksum)
);

CREATE TABLE sous.execution (
  id uuid PRIMARY KEY,
  recipe_name text NOT NULL,
  recipe_version integer NOT NULL,
  status text NOT NULL CHECK (status IN ('running', 'paused', 'compensating', 'completed', 'failed', 'cancelled')),
  input jsonb NOT NULL,
  output jsonb,
  error jsonb,
  idempotency_key text UNIQUE,
  parent_execution_id uuid REFERENCES sous.execution (id),
  parent_step_key text,
  traceparent text,
  -- Where this execution's workers reply: fixed at start, inherited by sub-recipes.
  reply_topic text NOT NULL,
  -- The engine state (a fold of the event log), read by the next decision.
  state jsonb NOT NULL,
  -- seq of the last event appended.
  last_seq integer NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  finished_at timestamptz,
  FOREIGN KEY (recipe_name, recipe_version) REFERENCES sous.recipe (name, version)
);
CREATE INDEX execution_status_updated ON sous.execution (status, updated_at);
CREATE INDEX execution_recipe ON sous.execution (recipe_name, recipe_version, created_at);
CREATE INDEX execution_parent ON sous.execution (parent_execution_id) WHERE parent_execution_id IS NOT NULL;

-- The event log: append-only, the source of truth for execution, step and step_attempt.
CREATE TABLE sous.execution_event (
  execution_id uuid NOT NULL REFERENCES sous.execution (id),
  seq integer NOT NULL CHECK (seq > 0),
  type text NOT NULL,
  data jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (execution_id, seq)
);

CREATE FUNCTION sous.refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'sous.execution_event is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER execution_event_append_only
  BEFORE UPDATE OR DELETE ON sous.execution_event
  FOR EACH ROW EXECUTE FUNCTION sous.refuse_event_change();

-- One row per step of an execution (per item inside a forEach, per compensation).
CREATE TABLE sous.step (
  execution_id uuid NOT NULL REFERENCES sous.execution (id),
  step_key text NOT NULL,
  step_id text NOT NULL,
  item_index integer,
  compensation boolean NOT NULL,
  kind text NOT NULL,
  status text NOT NULL,
  attempts integer NOT NULL,
  output jsonb,
  error jsonb,
  child_execution_id uuid,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  finished_at timestamptz,
  PRIMARY KEY (execution_id, step_key)
);

-- One row per attempt of a task step: what was sent to which capability, and what came back.
CREATE TABLE sous.step_attempt (
  id uuid PRIMARY KEY,
  execution_id uuid NOT NULL,
  step_key text NOT NULL,
  attempt integer NOT NULL,
  capability text NOT NULL,
  input jsonb,
  region text,
  status text NOT NULL CHECK (status IN ('scheduled', 'running', 'completed', 'failed')),
  worker_id text,
  error jsonb,
  scheduled_at timestamptz NOT NULL,
  started_at timestamptz,
  finished_at timestamptz,
  last_heartbeat_at timestamptz,
  FOREIGN KEY (execution_id, step_key) REFERENCES sous.step (execution_id, step_key)
);
CREATE INDEX step_attempt_execution ON sous.step_attempt (execution_id);
CREATE INDEX step_attempt_capability ON sous.step_attempt (capability, scheduled_at);

-- Reply messages already applied: a redelivered reply changes nothing.
CREATE TABLE sous.processed_message (
  message_id uuid PRIMARY KEY,
  execution_id uuid,
  processed_at timestamptz NOT NULL DEFAULT now()
);

-- Claim check: payloads too large for a Kafka message travel as a reference to a row here.
CREATE TABLE sous.payload (
  id uuid PRIMARY KEY,
  execution_id uuid,
  data jsonb NOT NULL,
  bytes integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
