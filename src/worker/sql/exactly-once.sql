-- The processing log of withExactlyOnce, in the service's own database.
CREATE SCHEMA IF NOT EXISTS sous_worker;
CREATE TABLE IF NOT EXISTS sous_worker.processed_command (
  idempotency_key text PRIMARY KEY,
  output jsonb,
  processed_at timestamptz NOT NULL DEFAULT now()
);
