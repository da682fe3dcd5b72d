-- Scheduled starts (issue 18 item 8): a schedule starts a recipe on a cron expression in an
-- IANA time zone. Schedules are data, created at runtime; one graphile-worker cron task
-- evaluates the due ones every minute (docs/schedules.md).
CREATE TABLE sous.schedule (
  id uuid PRIMARY KEY,
  -- Unique, so a create retried after a lost answer finds the schedule it made.
  name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._-]{1,100}$'),
  recipe_name text NOT NULL,
  -- NULL: the recipe's latest version when each run starts.
  recipe_version integer CHECK (recipe_version > 0),
  cron text NOT NULL,
  time_zone text NOT NULL,
  input jsonb NOT NULL,
  overlap text NOT NULL CHECK (overlap IN ('skip', 'queue_one', 'allow')),
  missed_runs text NOT NULL CHECK (missed_runs IN ('skip', 'run_once')),
  -- The cursor: the earliest fire time not decided yet. Only the evaluator holding the row
  -- lock moves it, in the transaction that records (and starts) the fires before it.
  next_fire_at timestamptz NOT NULL,
  -- A fire held back by the queue_one policy, started once the running execution ends.
  queued_fire_at timestamptz,
  -- The execution this schedule started last: the overlap policy asks whether it still runs.
  last_execution_id uuid,
  paused_at timestamptz,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- The evaluator's scan: active schedules due now, or holding a queued fire.
CREATE INDEX schedule_due ON sous.schedule (next_fire_at) WHERE paused_at IS NULL;
CREATE INDEX schedule_queued ON sous.schedule (queued_fire_at) WHERE paused_at IS NULL AND queued_fire_at IS NOT NULL;

-- What became of each fire time. The primary key is the exactly-once guarantee: a fire is
-- recorded in the transaction that starts its execution, so two control planes (or a
-- retried job) evaluating the same schedule can never both start it.
CREATE TABLE sous.schedule_run (
  schedule_id uuid NOT NULL REFERENCES sous.schedule (id) ON DELETE CASCADE,
  fire_time timestamptz NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('started', 'skipped', 'queued', 'missed', 'failed')),
  -- Started by a catch-up after downtime (missed_runs = run_once), not on time.
  catch_up boolean NOT NULL DEFAULT false,
  -- No foreign key: retention purges finished executions, the history stays.
  execution_id uuid,
  error jsonb,
  decided_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (schedule_id, fire_time)
);
-- At most one fire waits under queue_one.
CREATE UNIQUE INDEX schedule_run_one_queued ON sous.schedule_run (schedule_id) WHERE outcome = 'queued';
