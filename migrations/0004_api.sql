-- The GraphQL API's own tables: API tokens, the audit log, and dead letters ingested
-- from every *.DLT topic.

-- Callers authenticate with a bearer token; only its SHA-256 is stored.
CREATE TABLE sous.api_token (
  id uuid PRIMARY KEY,
  name text NOT NULL UNIQUE,
  role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  token_hash text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by text,
  revoked_at timestamptz,
  last_used_at timestamptz
);

-- Every mutation, allowed or refused: who, what, when, with which arguments, and how it ended.
CREATE TABLE sous.audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  token_id uuid,
  actor text NOT NULL,
  role text,
  operation text NOT NULL,
  arguments jsonb NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('ok', 'error', 'denied')),
  error_code text
);
CREATE INDEX audit_log_at ON sous.audit_log (at);

CREATE FUNCTION sous.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'sous.audit_log is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER audit_log_append_only
  BEFORE UPDATE OR DELETE ON sous.audit_log
  FOR EACH ROW EXECUTE FUNCTION sous.refuse_audit_change();

-- One row per record read from a *.DLT topic; the same record read twice is one row.
CREATE TABLE sous.dead_letter (
  id uuid PRIMARY KEY,
  dlt_topic text NOT NULL,
  dlt_partition integer NOT NULL,
  dlt_offset bigint NOT NULL,
  original_topic text NOT NULL,
  original_partition integer,
  original_offset bigint,
  message_key text,
  -- Kafka headers of the dead-lettered record (the original's and the DLT's own), as text.
  headers jsonb NOT NULL,
  -- The record's value: JSON when it parses, else the text in payload_text.
  payload jsonb,
  payload_text text,
  error_class text NOT NULL,
  error_code text NOT NULL,
  error_message text NOT NULL,
  error_stack text,
  consumer_group text,
  attempts integer,
  failed_at timestamptz,
  -- From the original topic (sous.cmd.<capability>) and the command, when it is one.
  capability text,
  execution_id uuid,
  step_key text,
  step_execution_id uuid,
  idempotency_key text,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'reprocessed', 'discarded')),
  ingested_at timestamptz NOT NULL DEFAULT now(),
  resolved_at timestamptz,
  resolved_by text,
  reprocess_count integer NOT NULL DEFAULT 0,
  -- What the last reprocessing did (outbox message id, whether a parked step was requeued).
  outcome jsonb,
  UNIQUE (dlt_topic, dlt_partition, dlt_offset)
);
CREATE INDEX dead_letter_status ON sous.dead_letter (status, ingested_at);
CREATE INDEX dead_letter_execution ON sous.dead_letter (execution_id) WHERE execution_id IS NOT NULL;

-- Subscriptions: every committed change of an execution row is announced; NOTIFY is
-- delivered only on commit, so listeners never see state that rolls back.
CREATE FUNCTION sous.notify_execution_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('sous_execution', json_build_object(
    'id', NEW.id, 'status', NEW.status, 'recipe', NEW.recipe_name, 'version', NEW.recipe_version,
    'seq', NEW.last_seq)::text);
  RETURN NULL;
END;
$$;
CREATE TRIGGER execution_notify
  AFTER INSERT OR UPDATE ON sous.execution
  FOR EACH ROW EXECUTE FUNCTION sous.notify_execution_change();
