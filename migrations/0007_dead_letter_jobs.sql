-- DLT reprocessing jobs: a bulk reprocess of many dead letters runs as a graphile-worker
-- job in bounded batches. The job row holds the progress operators watch (total, done,
-- failed, state); one item row per selected dead letter records what became of it, so a
-- job that crashed resumes where it stopped and never publishes a dead letter twice.
CREATE TABLE sous.dead_letter_job (
  id uuid PRIMARY KEY,
  state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'completed')),
  -- The selection as the operator gave it (ids or filter), for display and audit.
  selection jsonb NOT NULL,
  total integer NOT NULL CHECK (total >= 0),
  done integer NOT NULL DEFAULT 0 CHECK (done >= 0),
  failed integer NOT NULL DEFAULT 0 CHECK (failed >= 0),
  batch_size integer NOT NULL CHECK (batch_size BETWEEN 1 AND 10000),
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  -- Bumped with every letter handled: a running job whose row has not moved for a while
  -- lost its worker (a crash) and is started again.
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  -- The last transient error a batch stopped on (the batch is retried).
  last_error text,
  CHECK (done + failed <= total)
);
CREATE INDEX dead_letter_job_created ON sous.dead_letter_job (created_at DESC);
CREATE INDEX dead_letter_job_active ON sous.dead_letter_job (updated_at) WHERE state <> 'completed';

-- The dead letters a job took on when it was created (a snapshot: letters ingested later
-- are not part of it), in the order they are reprocessed.
CREATE TABLE sous.dead_letter_job_item (
  job_id uuid NOT NULL REFERENCES sous.dead_letter_job (id) ON DELETE CASCADE,
  dead_letter_id uuid NOT NULL REFERENCES sous.dead_letter (id),
  ord integer NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
  error_code text,
  error_message text,
  finished_at timestamptz,
  PRIMARY KEY (job_id, dead_letter_id)
);
CREATE INDEX dead_letter_job_item_pending ON sous.dead_letter_job_item (job_id, ord) WHERE status = 'pending';
-- Which unfinished job holds a dead letter: a second job does not take it on.
CREATE INDEX dead_letter_job_item_letter ON sous.dead_letter_job_item (dead_letter_id) WHERE status = 'pending';
