-- A dead-lettered attempt has a status of its own. Until now the engine left it as it was
-- (`running`, or `scheduled` when the worker could not decode the command), so the
-- attempt looked in flight while its command sat in a dead-letter topic, and
-- reporting.step_latency.in_flight counted it.

ALTER TABLE sous.step_attempt DROP CONSTRAINT step_attempt_status_check;
ALTER TABLE sous.step_attempt
  ADD CONSTRAINT step_attempt_status_check
  CHECK (status IN ('scheduled', 'running', 'dead_lettered', 'completed', 'failed'));

-- Attempts parked before this migration: the current attempt of each dead-lettered step.
UPDATE sous.step_attempt AS a
SET status = 'dead_lettered'
FROM sous.step AS s
WHERE s.execution_id = a.execution_id
  AND s.step_key = a.step_key
  AND s.status = 'dead_lettered'
  AND a.attempt = s.attempts
  AND a.status IN ('scheduled', 'running');

-- The same view, the same columns in the same order and meaning: only in_flight is
-- corrected to what its comment always said ("sent, with no reply yet"). Replaced in
-- place rather than versioned beside it because the old figure was wrong against its own
-- contract: a step_latency_v2 would leave analysts' dashboards on the wrong number.
-- in_flight also leaves out the attempts of a step parked as dead_lettered, so it stays
-- right for rows a control plane of the previous release writes during a rolling upgrade
-- (it still projects such an attempt as running).
CREATE OR REPLACE VIEW reporting.step_latency AS
SELECT
  a.capability,
  count(*) AS attempts,
  count(*) FILTER (WHERE a.status = 'completed') AS completed,
  count(*) FILTER (WHERE a.status = 'failed') AS failed,
  count(*) FILTER (WHERE a.status IN ('scheduled', 'running') AND s.status <> 'dead_lettered') AS in_flight,
  count(*) FILTER (WHERE s.compensation) AS compensation_attempts,
  round((percentile_cont(0.5) WITHIN GROUP (ORDER BY t.queue_ms))::numeric, 3) AS p50_queue_ms,
  round((percentile_cont(0.95) WITHIN GROUP (ORDER BY t.queue_ms))::numeric, 3) AS p95_queue_ms,
  round((percentile_cont(0.99) WITHIN GROUP (ORDER BY t.queue_ms))::numeric, 3) AS p99_queue_ms,
  round((percentile_cont(0.5) WITHIN GROUP (ORDER BY t.run_ms))::numeric, 3) AS p50_run_ms,
  round((percentile_cont(0.95) WITHIN GROUP (ORDER BY t.run_ms))::numeric, 3) AS p95_run_ms,
  round((percentile_cont(0.99) WITHIN GROUP (ORDER BY t.run_ms))::numeric, 3) AS p99_run_ms
FROM sous.step_attempt AS a
  JOIN sous.step AS s ON s.execution_id = a.execution_id AND s.step_key = a.step_key
  -- NULL while the attempt has not started (queue) or not finished (run): percentile_cont skips NULLs.
  CROSS JOIN LATERAL (
    SELECT
      extract(epoch FROM a.started_at - a.scheduled_at) * 1000 AS queue_ms,
      extract(epoch FROM a.finished_at - a.started_at) * 1000 AS run_ms
  ) AS t
GROUP BY a.capability;

COMMENT ON COLUMN reporting.step_latency.in_flight IS
  'Attempts scheduled or running now: sent, with no reply yet. An attempt parked in a dead-letter topic '
  '(its step dead_lettered) is not in flight: it counts in attempts only, until it is reprocessed.';
