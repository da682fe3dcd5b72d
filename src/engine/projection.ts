import type { RecipePlan } from '../recipe/plan.js';
import type { EngineEvent } from './events.js';
import { StateDraft } from './evolve.js';
import { indexPlan, parseStepKey } from './plan-index.js';
import { type ExecutionState, type StepState, TERMINAL_STATUSES } from './state.js';

/*
 * The state tables as pure functions of the event log: the control plane writes these
 * rows after each decision, and rebuilding them from the log gives the same rows.
 */

export interface ExecutionRow {
  readonly id: string;
  readonly recipe_name: string;
  readonly recipe_version: number;
  readonly status: string;
  readonly input: unknown;
  readonly output: unknown;
  readonly error: unknown;
  readonly idempotency_key: string | null;
  readonly parent_execution_id: string | null;
  readonly parent_step_key: string | null;
  readonly state: ExecutionState;
  readonly last_seq: number;
  readonly created_at: string;
  readonly updated_at: string;
  readonly finished_at: string | null;
}

export function executionRow(state: ExecutionState, lastSeq: number): ExecutionRow {
  const terminal = TERMINAL_STATUSES.includes(state.status);
  return {
    id: state.executionId,
    recipe_name: state.recipe,
    recipe_version: state.version,
    status: state.status,
    input: state.input,
    output: state.output ?? null,
    error: state.error ?? null,
    idempotency_key: state.idempotencyKey ?? null,
    parent_execution_id: state.parent?.executionId ?? null,
    parent_step_key: state.parent?.stepKey ?? null,
    state,
    last_seq: lastSeq,
    created_at: state.createdAt,
    updated_at: state.updatedAt,
    finished_at: terminal ? state.updatedAt : null,
  };
}

export interface StepRow {
  readonly execution_id: string;
  readonly step_key: string;
  readonly step_id: string;
  readonly item_index: number | null;
  readonly compensation: boolean;
  readonly kind: string;
  readonly status: string;
  readonly attempts: number;
  readonly output: unknown;
  readonly error: unknown;
  readonly child_execution_id: string | null;
  readonly created_at: string;
  readonly updated_at: string;
  readonly finished_at: string | null;
}

export function stepRow(executionId: string, key: string, st: StepState, plan: RecipePlan): StepRow {
  const { itemIndex, compensation } = parseStepKey(key);
  return {
    execution_id: executionId,
    step_key: key,
    step_id: st.stepId,
    item_index: itemIndex ?? null,
    compensation,
    kind: compensation ? 'task' : (indexPlan(plan).get(st.stepId)?.step.type ?? 'task'),
    status: st.status,
    attempts: st.attempt,
    output: st.output ?? null,
    error: st.error ?? null,
    child_execution_id: st.childExecutionId ?? null,
    created_at: st.createdAt,
    updated_at: st.updatedAt,
    finished_at: st.finishedAt ?? null,
  };
}

/**
 * The step rows events leave behind, starting from `before` (undefined: from the first
 * event): each touched step as the event left it, including item steps the same event
 * retired from the state; steps a rerun forgot are dropped. From the whole log, the
 * step table; from one decision's events, the rows that decision writes.
 */
export function stepRowsOf(
  executionId: string,
  before: ExecutionState | undefined,
  events: readonly EngineEvent[],
  plan: RecipePlan,
): Map<string, StepRow> {
  const rows = new Map<string, StepRow>();
  // One draft for all the events: what they change is copied once, not once per event.
  const draft = new StateDraft(before, plan);
  for (const event of events) {
    const retired = draft.apply(event);
    if (event.type === 'ExecutionRewound') for (const key of event.removedStepKeys) rows.delete(key);
    const key = touchedStepKey(event);
    if (key === undefined) continue;
    const st = draft.state?.steps[key] ?? retired[key];
    if (st !== undefined) rows.set(key, stepRow(executionId, key, st, plan));
  }
  return rows;
}

/**
 * The step rows one decision writes, from its events, the state they left and the item
 * step states they retired: the rows `stepRowsOf(executionId, before, events, plan)` gives,
 * without folding the events again (each touched step as the last event touching it left
 * it: nothing else changes a step's state, and a retired item's steps are as they left).
 */
export function decisionStepRows(
  executionId: string,
  after: ExecutionState,
  retired: ReadonlyMap<string, StepState>,
  events: readonly EngineEvent[],
  plan: RecipePlan,
): Map<string, StepRow> {
  const touched = new Set<string>();
  for (const event of events) {
    if (event.type === 'ExecutionRewound') for (const key of event.removedStepKeys) touched.delete(key);
    const key = touchedStepKey(event);
    if (key !== undefined) touched.add(key);
  }
  const rows = new Map<string, StepRow>();
  for (const key of touched) {
    const st = after.steps[key] ?? retired.get(key);
    if (st !== undefined) rows.set(key, stepRow(executionId, key, st, plan));
  }
  return rows;
}

/** Step keys an event batch touched. */
export function touchedStepKeys(events: readonly EngineEvent[]): Set<string> {
  const keys = new Set<string>();
  for (const e of events) {
    const key = touchedStepKey(e);
    if (key !== undefined) keys.add(key);
  }
  return keys;
}

/** The step an event changes the row of, if any. */
function touchedStepKey(e: EngineEvent): string | undefined {
  return 'stepKey' in e && e.type !== 'ChildExecutionRequested' && e.type !== 'SignalConsumed' ? e.stepKey : undefined;
}

/**
 * A sous.step_attempt row. Its input is not stored: the attempt's StepScheduled event holds
 * it, and the API reads it from there. (wal_level = logical logs every row version in full,
 * so an input on the row was written to the WAL twice more: at the insert and again at the
 * update that finishes the attempt.)
 */
export interface AttemptRow {
  readonly id: string;
  readonly execution_id: string;
  readonly step_key: string;
  readonly attempt: number;
  readonly capability: string;
  readonly region: string | null;
  /**
   * dead_lettered: parked in a dead-letter topic, neither in flight nor finished;
   * cancelled: abandoned when the execution's deadline passed (its reply is ignored).
   */
  readonly status: 'scheduled' | 'running' | 'dead_lettered' | 'completed' | 'failed' | 'cancelled';
  readonly worker_id: string | null;
  readonly error: unknown;
  readonly scheduled_at: string;
  readonly started_at: string | null;
  readonly finished_at: string | null;
  readonly last_heartbeat_at: string | null;
}

/** The columns of an attempt that change after it is scheduled. */
export type AttemptColumns = Partial<
  Omit<AttemptRow, 'id' | 'execution_id' | 'step_key' | 'attempt' | 'capability' | 'region' | 'scheduled_at'>
>;

/** A change to an existing attempt row: the given columns take the given values (its step names where the row is). */
export type AttemptUpdate = { readonly id: string; readonly step_key: string } & AttemptColumns;

export interface AttemptChanges {
  readonly inserts: AttemptRow[];
  readonly updates: AttemptUpdate[];
}

/** Attempt rows created and changed by events, in event order. */
export function attemptChanges(executionId: string, events: readonly EngineEvent[]): AttemptChanges {
  const inserts: AttemptRow[] = [];
  const updates: AttemptUpdate[] = [];
  /** The attempt `id` of the step `stepKey` takes these columns. */
  const change = (id: string, stepKey: string, columns: AttemptColumns) =>
    updates.push({ id, step_key: stepKey, ...columns });
  for (const e of events) {
    switch (e.type) {
      case 'StepScheduled':
        inserts.push({
          id: e.stepExecutionId,
          execution_id: executionId,
          step_key: e.stepKey,
          attempt: e.attempt,
          capability: e.capability,
          region: e.region ?? null,
          status: 'scheduled',
          worker_id: null,
          error: null,
          scheduled_at: e.at,
          started_at: null,
          finished_at: null,
          last_heartbeat_at: null,
        });
        break;
      case 'StepStarted':
        change(e.stepExecutionId, e.stepKey, {
          status: 'running',
          worker_id: e.workerId,
          started_at: e.startedAt ?? e.at,
          last_heartbeat_at: e.at,
        });
        break;
      case 'StepHeartbeat':
        change(e.stepExecutionId, e.stepKey, { status: 'running', last_heartbeat_at: e.at });
        break;
      case 'StepCompleted':
        if (e.stepExecutionId !== undefined)
          change(e.stepExecutionId, e.stepKey, { status: 'completed', ...startOf(e), finished_at: e.at });
        if (e.abandonedStepExecutionId !== undefined) change(e.abandonedStepExecutionId, e.stepKey, abandoned(e.at));
        break;
      case 'StepFailed':
        if (e.stepExecutionId !== undefined)
          change(e.stepExecutionId, e.stepKey, { status: 'failed', error: e.error, ...startOf(e), finished_at: e.at });
        break;
      case 'StepDeadLettered':
        // Not finished (no finished_at): the command waits in a dead-letter topic and may
        // be reprocessed (StepRequeued makes it scheduled again). Not in flight either: no
        // worker holds it, so it is not left `running`.
        change(e.stepExecutionId, e.stepKey, { status: 'dead_lettered', error: e.error, ...startOf(e) });
        break;
      case 'StepCancelled':
        if (e.stepExecutionId !== undefined)
          change(e.stepExecutionId, e.stepKey, { status: 'cancelled', error: e.reason, finished_at: e.at });
        break;
      case 'StepRequeued':
        change(e.stepExecutionId, e.stepKey, { status: 'scheduled' });
        break;
      case 'StepRetryReady':
        if (e.abandonedStepExecutionId !== undefined) change(e.abandonedStepExecutionId, e.stepKey, abandoned(e.at));
        break;
      default:
        break;
    }
  }
  return { inserts, updates };
}

/** The start a final reply recorded (no StepStarted came before it): the attempt's worker and start. */
function startOf(e: {
  readonly startedAt?: string;
  readonly workerId?: string;
}): Partial<Pick<AttemptRow, 'started_at' | 'worker_id'>> {
  if (e.startedAt === undefined) return {};
  return { started_at: e.startedAt, ...(e.workerId === undefined ? {} : { worker_id: e.workerId }) };
}

/** An attempt an operator gave up on (retry or skip): failed, with the reason. */
function abandoned(at: string): AttemptColumns {
  return {
    status: 'failed',
    error: { code: 'abandoned_by_operator', message: 'an operator retried or skipped the step', retryable: false },
    finished_at: at,
  };
}

/**
 * Attempt rows of a whole event log, as the decisions left them: a rerun from a step
 * deletes the attempts of the steps it forgets (the log keeps their history).
 */
export function attemptRowsOf(executionId: string, events: readonly EngineEvent[]): Map<string, AttemptRow> {
  const rows = new Map<string, AttemptRow>();
  let segment: EngineEvent[] = [];
  for (const e of events) {
    if (e.type !== 'ExecutionRewound') {
      segment.push(e);
      continue;
    }
    applyAttemptChanges(rows, attemptChanges(executionId, segment));
    segment = [];
    const removed = new Set(e.removedStepKeys);
    for (const [id, row] of rows) if (removed.has(row.step_key)) rows.delete(id);
  }
  applyAttemptChanges(rows, attemptChanges(executionId, segment));
  return rows;
}

/** Applies updates to rows in memory, as the UPDATE statement does (rebuilds, tests). */
export function applyAttemptChanges(rows: Map<string, AttemptRow>, changes: AttemptChanges): void {
  for (const row of changes.inserts) rows.set(row.id, row);
  for (const update of changes.updates) {
    const row = rows.get(update.id);
    if (row !== undefined) rows.set(update.id, { ...row, ...update });
  }
}
