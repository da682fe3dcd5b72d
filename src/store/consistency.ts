import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { AttemptRow, ExecutionRow, StepRow } from '../engine/projection.js';
import { insertSupersededAttempts, placeAttempts } from './attempts.js';
import { upsertSnapshots } from './executions.js';
import { upsertSteps } from './steps.js';

/*
 * The projection tables of one execution as a whole: read for verification, replaced
 * when rebuilt from the event log. Both run under the execution's advisory lock
 * (sous.execution_lock_key, 0021): shared to read, exclusive to replace.
 */

/** An execution's stored rows as they are, every column, under a shared lock (no decision interleaves). */
export interface StoredProjection {
  readonly execution: (Record<string, unknown> & { recipe_name: string; recipe_version: number }) | undefined;
  readonly steps: (Record<string, unknown> & { step_key: string })[];
  readonly attempts: (Record<string, unknown> & { id: string })[];
}

export async function selectProjectionForShare(trx: Kysely<Database>, executionId: string): Promise<StoredProjection> {
  // The advisory lock's shared mode: decisions take it exclusively. Its own statement, so
  // the reads below see what the last decision before it committed.
  await sql`/* sous:lockExecutionShared */
    SELECT pg_advisory_xact_lock_shared(sous.execution_lock_key(${executionId}::uuid))`.execute(trx);
  const head = await sql<Record<string, unknown> & { recipe_name: string; recipe_version: number }>`
    SELECT * FROM sous.execution WHERE id = ${executionId}`.execute(trx);
  const execution = head.rows[0];
  if (execution === undefined) return { execution, steps: [], attempts: [] };
  const steps = await sql<Record<string, unknown> & { step_key: string }>`
    SELECT * FROM sous.step WHERE execution_id = ${executionId}`.execute(trx);
  const attempts = await sql<Record<string, unknown> & { id: string }>`
    SELECT * FROM sous.step_attempt WHERE execution_id = ${executionId}`.execute(trx);
  return { execution, steps: steps.rows, attempts: attempts.rows };
}

/**
 * Replaces an execution's row, steps and attempts with rows rebuilt from its log (the
 * caller holds the execution's lock: lockExecutionHeads). The state becomes a snapshot at last_seq, and
 * written_by is cleared, so no control plane trusts a state it cached before.
 */
export async function replaceProjection(
  trx: Kysely<Database>,
  row: ExecutionRow,
  steps: readonly StepRow[],
  attempts: readonly AttemptRow[],
): Promise<void> {
  await sql`DELETE FROM sous.superseded_attempt WHERE execution_id = ${row.id}`.execute(trx);
  await sql`DELETE FROM sous.step WHERE execution_id = ${row.id}`.execute(trx);
  await sql`
    UPDATE sous.execution SET status = ${row.status}, input = ${JSON.stringify(row.input)}::jsonb,
      output = ${JSON.stringify(row.output)}::jsonb, error = ${JSON.stringify(row.error)}::jsonb,
      state = NULL, last_seq = ${row.last_seq}, state_seq = ${row.last_seq},
      written_by = NULL, created_at = ${row.created_at},
      updated_at = ${row.updated_at}, finished_at = ${row.finished_at}
    WHERE id = ${row.id}`.execute(trx);
  await upsertSnapshots(trx, [{ execution_id: row.id, seq: row.last_seq, state: row.state }]);
  // Each step's latest attempt on its row, the others superseded, as decisions leave them (0022).
  const placed = placeAttempts(steps, attempts, []);
  await upsertSteps(trx, placed.steps);
  await insertSupersededAttempts(trx, placed.replacedNew);
}
