import { isDeepStrictEqual } from 'node:util';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { replay } from '../engine/evolve.js';
import { attemptRowsOf, executionRow, stepRowsOf } from '../engine/projection.js';
import { selectProjectionForShare } from '../store/consistency.js';
import { selectEvents } from '../store/events.js';
import { selectStateSnapshotOnly } from '../store/executions.js';
import { ExecutionNotFoundError } from './errors.js';
import type { PlanCache } from './plan-cache.js';

/** One way the state tables differ from what the event log says. */
export interface Disagreement {
  readonly executionId: string;
  readonly table: 'execution' | 'step' | 'step_attempt';
  readonly key: string;
  readonly column: string;
  readonly fromLog: unknown;
  readonly inTable: unknown;
}

const time = (value: unknown) => (value instanceof Date ? value.toISOString() : value);
/** Timestamps compare as instants, JSON as values. */
const normalise = (value: unknown): unknown =>
  value === null || value === undefined
    ? null
    : value instanceof Date
      ? value.toISOString()
      : typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value)
        ? new Date(value).toISOString()
        : value;

function compare(
  out: Disagreement[],
  executionId: string,
  table: Disagreement['table'],
  key: string,
  expected: Record<string, unknown> | undefined,
  actual: Record<string, unknown> | undefined,
  columns: readonly string[],
): void {
  if (expected === undefined || actual === undefined) {
    out.push({ executionId, table, key, column: '(row)', fromLog: expected ?? null, inTable: actual ?? null });
    return;
  }
  for (const column of columns) {
    const fromLog = normalise(expected[column]);
    const inTable = normalise(time(actual[column]));
    if (!isDeepStrictEqual(fromLog, inTable)) out.push({ executionId, table, key, column, fromLog, inTable });
  }
}

/** Compares rows by key: a row on one side only, or a column that differs, is a disagreement. */
function compareRows(
  out: Disagreement[],
  executionId: string,
  table: Disagreement['table'],
  expected: ReadonlyMap<string, object>,
  actual: ReadonlyMap<string, Record<string, unknown>>,
  columns: readonly string[],
): void {
  for (const key of new Set([...actual.keys(), ...expected.keys()])) {
    const fromLog = expected.get(key) as Record<string, unknown> | undefined;
    compare(out, executionId, table, key, fromLog, actual.get(key), columns);
  }
}

/**
 * Compares an execution's rows in sous.execution, sous.step and sous.step_attempt with
 * what its event log alone gives (the same projection rebuildExecution writes; the state
 * snapshot against the log up to its seq); an empty
 * list means they agree. Reads under the execution's lock (shared), so no decision interleaves.
 */
export async function verifyExecution(
  db: Kysely<Database>,
  plans: PlanCache,
  executionId: string,
): Promise<Disagreement[]> {
  return db.transaction().execute(async (trx) => {
    const stored = await selectProjectionForShare(trx, executionId);
    const row = stored.execution;
    if (row === undefined) throw new ExecutionNotFoundError(`no execution ${executionId}`);
    const plan = await plans.get(trx, row.recipe_name, row.recipe_version);
    const events = await selectEvents(trx, executionId);
    // The stored state is a snapshot: the replay of the log up to its seq (sous.execution_snapshot,
    // or the row's own state when written before 0017). Seq 0: none yet, and none stored.
    const snapshotRow = await selectStateSnapshotOnly(trx, executionId);
    const stateSeq = snapshotRow?.state_seq ?? 0;
    const headSeq = typeof row.state_seq === 'number' ? row.state_seq : events.length;
    const snapshotSeqValid =
      stateSeq >= 0 &&
      stateSeq <= events.length &&
      !(stateSeq === 0 && (snapshotRow?.state ?? null) !== null) &&
      headSeq === stateSeq;
    // The log replayed once: up to the snapshot's seq (to check the snapshot), then on from there.
    const atSnapshot = snapshotSeqValid && stateSeq > 0 ? replay(events.slice(0, stateSeq), plan) : undefined;
    const state = atSnapshot === undefined ? replay(events, plan) : replay(events.slice(stateSeq), plan, atSnapshot);
    const out: Disagreement[] = [];
    if (state === undefined) {
      out.push({
        executionId,
        table: 'execution',
        key: executionId,
        column: '(events)',
        fromLog: null,
        inTable: 'row',
      });
      return out;
    }
    const expected = executionRow(state, events.length) as unknown as Record<string, unknown>;
    compare(out, executionId, 'execution', executionId, expected, row, [
      'status',
      'output',
      'error',
      'last_seq',
      'created_at',
      'updated_at',
      'finished_at',
    ]);
    if (!snapshotSeqValid) {
      out.push({
        executionId,
        table: 'execution',
        key: executionId,
        column: 'state_seq',
        fromLog: stateSeq,
        inTable: headSeq,
      });
    } else if (atSnapshot !== undefined) {
      compare(out, executionId, 'execution', executionId, { state: atSnapshot }, { state: snapshotRow?.state }, [
        'state',
      ]);
    }

    const stepRows = new Map(stored.steps.map((r) => [r.step_key, r]));
    const expectedSteps = stepRowsOf(executionId, undefined, events, plan);
    compareRows(out, executionId, 'step', expectedSteps, stepRows, [
      'status',
      'attempts',
      'output',
      'error',
      'kind',
      'item_index',
      'compensation',
      'finished_at',
    ]);

    const attemptRows = new Map(stored.attempts.map((r) => [r.id, r]));
    const expectedAttempts = attemptRowsOf(executionId, events);
    compareRows(out, executionId, 'step_attempt', expectedAttempts, attemptRows, [
      'step_key',
      'attempt',
      'capability',
      'status',
      'worker_id',
      'error',
      'started_at',
      'finished_at',
    ]);
    return out;
  });
}
