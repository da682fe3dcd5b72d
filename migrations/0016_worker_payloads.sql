-- Claim-check payloads move to a schema of their own (issue 18 item 5), so a worker reads
-- large inputs and writes large outputs without any access to the control plane's tables:
-- the role sous_payload_worker may SELECT and INSERT sous_payload.payload, and nothing in
-- the schema sous. docs/payloads.md describes the store and the role.
CREATE SCHEMA sous_payload;
COMMENT ON SCHEMA sous_payload IS
  'Claim-check payloads of sous (large step inputs and outputs). Workers read and add them as sous_payload_worker.';

CREATE TABLE sous_payload.payload (
  id uuid PRIMARY KEY,
  -- Whose payload it is: retention purges an execution's payloads with it.
  execution_id uuid,
  data jsonb NOT NULL,
  bytes integer NOT NULL CHECK (bytes >= 0),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payload_execution ON sous_payload.payload (execution_id);

-- Payloads of executions still running keep their ids: commands in flight name them.
INSERT INTO sous_payload.payload (id, execution_id, data, bytes, created_at)
SELECT id, execution_id, data, bytes, created_at FROM sous.payload;
DROP TABLE sous.payload;

-- The workers' role. Roles belong to the cluster: created here when the migrating user may,
-- otherwise an administrator creates it once (the HINT says how) and this grants nothing.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sous_payload_worker') THEN
    IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
      BEGIN
        CREATE ROLE sous_payload_worker NOLOGIN;
        COMMENT ON ROLE sous_payload_worker IS 'Workers of sous: read and add claim-check payloads (schema sous_payload).';
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL; -- created by a concurrent migration of another database
      END;
    ELSE
      RAISE WARNING USING
        MESSAGE = format('role sous_payload_worker does not exist and %I may not create roles: workers cannot '
          'reach claim-check payloads until it is created and granted', current_user),
        HINT = 'As a superuser: CREATE ROLE sous_payload_worker NOLOGIN; then, in this database, as its owner: '
          'GRANT USAGE ON SCHEMA sous_payload TO sous_payload_worker; '
          'GRANT SELECT, INSERT ON sous_payload.payload TO sous_payload_worker;';
    END IF;
  END IF;

  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sous_payload_worker') THEN
    GRANT USAGE ON SCHEMA sous_payload TO sous_payload_worker;
    -- No UPDATE or DELETE: a worker adds payloads under new ids, it never changes one.
    GRANT SELECT, INSERT ON sous_payload.payload TO sous_payload_worker;
  END IF;
END
$$;
