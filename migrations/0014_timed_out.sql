-- An execution whose deadline passed ends `timed_out` (its steps in flight were cancelled
-- and its compensations ran); the attempts it abandoned are `cancelled`, neither
-- completed nor failed by their worker. The step table's status has no constraint.
ALTER TABLE sous.execution DROP CONSTRAINT execution_status_check;
ALTER TABLE sous.execution
  ADD CONSTRAINT execution_status_check
  CHECK (status IN ('running', 'paused', 'compensating', 'completed', 'failed', 'cancelled', 'timed_out'));

ALTER TABLE sous.step_attempt DROP CONSTRAINT step_attempt_status_check;
ALTER TABLE sous.step_attempt
  ADD CONSTRAINT step_attempt_status_check
  CHECK (status IN ('scheduled', 'running', 'dead_lettered', 'completed', 'failed', 'cancelled'));
