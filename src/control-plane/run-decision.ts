import { randomBytes, randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import { decide, type Decision } from '../engine/decide.js';
import type { EngineEvent } from '../engine/events.js';
import { attemptChanges, executionRow, stepRowsOf, type StepRow } from '../engine/projection.js';
import type { ExecutionState } from '../engine/state.js';
import type { OpenedItems } from '../engine/item-source.js';
import type { Trigger } from '../engine/triggers.js';
import type { OutboxMessage } from '../outbox/outbox-message.js';
import { writeOutbox } from '../outbox/write-outbox.js';
import { REPLY_TOPIC, type StepError } from '../protocol/messages.js';
import { commandMessage, childFinishedMessage } from './command-message.js';
import { ExecutionNotFoundError, RecipeNotFoundError } from './errors.js';
import { postgresItemSource, writeOpenedItems } from './foreach-items.js';
import type { PlanCache } from './plan-cache.js';

/** What decisions need from the process around them; compiled once by the control plane. */
export interface DecisionEnvironment {
  readonly plans: PlanCache;
  /** Topic replies to this control plane's commands go to. @default 'sous.replies' */
  readonly replyTopic: string;
  /** Inputs larger than this travel by reference (claim check). @default 65536 */
  readonly maxInlinePayloadBytes: number;
  /** graphile-worker task that fires engine timers. */
  readonly timerTask: string;
  readonly now: () => Date;
}

export const TIMER_TASK = 'sous_timer';

export function defaultDecisionEnvironment(
  plans: PlanCache,
  overrides: Partial<DecisionEnvironment> = {},
): DecisionEnvironment {
  return {
    plans,
    replyTopic: REPLY_TOPIC,
    maxInlinePayloadBytes: 64 * 1024,
    timerTask: TIMER_TASK,
    now: () => new Date(),
    ...overrides,
  };
}

interface LockedExecution {
  readonly state: ExecutionState;
  readonly last_seq: number;
  readonly traceparent: string | null;
  readonly reply_topic: string;
}

/** A new W3C traceparent: a fresh trace when none is given, else a new span of it. */
export function childTraceparent(parent: string | null | undefined): string {
  const traceId = parent?.split('-')[1] ?? randomBytes(16).toString('hex');
  return `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
}

/**
 * One decision, inside the caller's transaction: locks the execution row (so decisions
 * for one execution never run at once, whichever process takes them), decides, then
 * appends the events, updates the state tables, writes the commands to the outbox and
 * adds the timer jobs — all committing together or not at all.
 */
export async function runDecision(
  trx: Transaction<Database>,
  env: DecisionEnvironment,
  executionId: string,
  trigger: Trigger,
  options: { traceparent?: string; replyTopic?: string } = {},
): Promise<Decision> {
  return runDecisions(trx, env, executionId, [trigger], options);
}

/**
 * Several triggers of one execution decided in turn under one lock, as `runDecision` would
 * one after the other, but with the execution row (its state) and the event log written
 * once: a batch of replies for one busy execution (a forEach's items) costs one state
 * write, not one per reply.
 */
export async function runDecisions(
  trx: Transaction<Database>,
  env: DecisionEnvironment,
  executionId: string,
  triggers: readonly Trigger[],
  options: { traceparent?: string; replyTopic?: string } = {},
): Promise<Decision> {
  const first = triggers[0];
  if (first === undefined) return { events: [], state: undefined, items: [] };
  let locked: LockedExecution | undefined;
  let recipe: string;
  let version: number;
  if (first.kind === 'start') {
    recipe = first.recipe;
    version = first.version;
  } else {
    const { rows } = await sql<LockedExecution>`
      SELECT state, last_seq, traceparent, reply_topic FROM sous.execution WHERE id = ${executionId} FOR UPDATE`.execute(
      trx,
    );
    locked = rows[0];
    if (locked === undefined) throw new ExecutionNotFoundError(`no execution ${executionId}`);
    recipe = locked.state.recipe;
    version = locked.state.version;
  }
  const plan = await env.plans.get(trx, recipe, version);
  let state = locked?.state;
  const events: EngineEvent[] = [];
  const items: OpenedItems[] = [];
  // Rows of each decision, written at once (a later trigger's decision may read them:
  // items, finished item steps); a new execution's wait for its row (their foreign key).
  const deferred: (() => Promise<void>)[] = [];
  for (const trigger of triggers) {
    const decision = await decide(state, trigger, {
      plan,
      now: env.now(),
      newId: randomUUID,
      random: Math.random,
      items: postgresItemSource(trx, executionId),
    });
    if (decision.events.length === 0 || decision.state === undefined) continue;
    const before = state;
    const writeRows = async () => {
      await writeOpenedItems(trx, executionId, decision.items);
      await forgetRewoundSteps(trx, executionId, decision.events);
      await writeStepRows(trx, stepRowsOf(executionId, before, decision.events, plan));
      await writeAttemptRows(trx, executionId, decision.events);
    };
    if (locked !== undefined) await writeRows();
    else deferred.push(writeRows);
    events.push(...decision.events);
    items.push(...decision.items);
    state = decision.state;
  }
  if (events.length === 0 || state === undefined) return { events, state, items };

  const firstSeq = (locked?.last_seq ?? 0) + 1;
  const lastSeq = firstSeq + events.length - 1;
  const traceparent = locked?.traceparent ?? options.traceparent ?? childTraceparent(undefined);
  const replyTopic = locked?.reply_topic ?? options.replyTopic ?? env.replyTopic;
  const row = executionRow(state, lastSeq);

  if (locked === undefined) {
    await sql`
      INSERT INTO sous.execution
        (id, recipe_name, recipe_version, status, input, output, error, idempotency_key, parent_execution_id,
         parent_step_key, traceparent, reply_topic, state, last_seq, created_at, updated_at, finished_at)
      VALUES (${row.id}, ${row.recipe_name}, ${row.recipe_version}, ${row.status}, ${json(row.input)}::jsonb,
        ${json(row.output)}::jsonb, ${json(row.error)}::jsonb, ${row.idempotency_key}, ${row.parent_execution_id},
        ${row.parent_step_key}, ${traceparent}, ${replyTopic}, ${json(row.state)}::jsonb, ${row.last_seq}, ${row.created_at},
        ${row.updated_at}, ${row.finished_at})`.execute(trx);
  } else {
    await sql`
      UPDATE sous.execution SET status = ${row.status}, output = ${json(row.output)}::jsonb, error = ${json(row.error)}::jsonb,
        state = ${json(row.state)}::jsonb, last_seq = ${row.last_seq}, updated_at = ${row.updated_at}, finished_at = ${row.finished_at}
      WHERE id = ${executionId}`.execute(trx);
  }

  await sql`
    INSERT INTO sous.execution_event (execution_id, seq, type, data, created_at)
    SELECT ${executionId}, ${firstSeq} + ord - 1, e->>'type', e, (e->>'at')::timestamptz
    FROM jsonb_array_elements(${json(events)}::jsonb) WITH ORDINALITY AS t(e, ord)`.execute(trx);

  for (const writeRows of deferred) await writeRows();
  await writeOutboxAndTimers(trx, env, state, events, traceparent, replyTopic);
  await startChildren(trx, env, state, events, traceparent, replyTopic);
  return { events, state, items };
}

/** A rerun forgets steps: their rows go (the event log keeps their history). */
async function forgetRewoundSteps(trx: Transaction<Database>, executionId: string, events: readonly EngineEvent[]) {
  for (const event of events) {
    if (event.type !== 'ExecutionRewound' || event.removedStepKeys.length === 0) continue;
    const keys = JSON.stringify(event.removedStepKeys);
    await sql`
      DELETE FROM sous.step_attempt WHERE execution_id = ${executionId}
        AND step_key IN (SELECT jsonb_array_elements_text(${keys}::jsonb))`.execute(trx);
    await sql`
      DELETE FROM sous.step WHERE execution_id = ${executionId}
        AND step_key IN (SELECT jsonb_array_elements_text(${keys}::jsonb))`.execute(trx);
    await sql`
      DELETE FROM sous.foreach_item WHERE execution_id = ${executionId}
        AND step_key IN (SELECT jsonb_array_elements_text(${keys}::jsonb))`.execute(trx);
  }
}

function json(value: unknown): string {
  return JSON.stringify(value ?? null);
}

async function writeStepRows(trx: Transaction<Database>, stepRows: ReadonlyMap<string, StepRow>) {
  const rows = [...stepRows.values()];
  if (rows.length === 0) return;
  await sql`
    INSERT INTO sous.step (execution_id, step_key, step_id, item_index, compensation, kind, status, attempts, output, error,
      child_execution_id, created_at, updated_at, finished_at)
    SELECT execution_id, step_key, step_id, item_index, compensation, kind, status, attempts, output, error,
      child_execution_id, created_at, updated_at, finished_at
    FROM jsonb_to_recordset(${json(rows)}::jsonb) AS r(execution_id uuid, step_key text, step_id text, item_index int,
      compensation boolean, kind text, status text, attempts int, output jsonb, error jsonb, child_execution_id uuid,
      created_at timestamptz, updated_at timestamptz, finished_at timestamptz)
    ON CONFLICT (execution_id, step_key) DO UPDATE SET status = EXCLUDED.status, attempts = EXCLUDED.attempts,
      output = EXCLUDED.output, error = EXCLUDED.error, child_execution_id = EXCLUDED.child_execution_id,
      updated_at = EXCLUDED.updated_at, finished_at = EXCLUDED.finished_at`.execute(trx);
}

async function writeAttemptRows(trx: Transaction<Database>, executionId: string, events: readonly EngineEvent[]) {
  const { inserts, updates } = attemptChanges(executionId, events);
  if (inserts.length > 0) {
    await sql`
      INSERT INTO sous.step_attempt (id, execution_id, step_key, attempt, capability, input, region, status, worker_id, error,
        scheduled_at, started_at, finished_at, last_heartbeat_at)
      SELECT id, execution_id, step_key, attempt, capability, input, region, status, worker_id, error, scheduled_at,
        started_at, finished_at, last_heartbeat_at
      FROM jsonb_to_recordset(${json(inserts)}::jsonb) AS r(id uuid, execution_id uuid, step_key text, attempt int,
        capability text, input jsonb, region text, status text, worker_id text, error jsonb, scheduled_at timestamptz,
        started_at timestamptz, finished_at timestamptz, last_heartbeat_at timestamptz)`.execute(trx);
  }
  // Updates apply in event order: a later change to the same attempt wins.
  for (const update of updates) {
    await sql`
      UPDATE sous.step_attempt a SET
        status = coalesce(u.status, a.status), worker_id = coalesce(u.worker_id, a.worker_id),
        error = coalesce(u.error, a.error), started_at = coalesce(u.started_at, a.started_at),
        finished_at = coalesce(u.finished_at, a.finished_at), last_heartbeat_at = coalesce(u.last_heartbeat_at, a.last_heartbeat_at)
      FROM jsonb_to_record(${json(update)}::jsonb) AS u(id uuid, status text, worker_id text, error jsonb,
        started_at timestamptz, finished_at timestamptz, last_heartbeat_at timestamptz)
      WHERE a.id = u.id`.execute(trx);
  }
}

async function writeOutboxAndTimers(
  trx: Transaction<Database>,
  env: DecisionEnvironment,
  state: ExecutionState,
  events: readonly EngineEvent[],
  traceparent: string,
  replyTopic: string,
) {
  const messages: OutboxMessage[] = [];
  const timers: { id: string; fireAt: string }[] = [];
  const cleared: string[] = [];
  for (const event of events) {
    if (event.type === 'StepScheduled') {
      messages.push(await commandMessage(trx, env, state, event, childTraceparent(traceparent), replyTopic));
    } else if (event.type === 'TimerScheduled') {
      timers.push({ id: event.timerId, fireAt: event.fireAt });
    } else if (event.type === 'TimerCleared') {
      cleared.push(event.timerId);
    } else if (
      (event.type === 'ExecutionCompleted' ||
        event.type === 'ExecutionFailed' ||
        event.type === 'ExecutionCancelled') &&
      state.parent !== undefined
    ) {
      // The parent hears of it through its reply stream, in a decision of its own.
      const status =
        event.type === 'ExecutionCompleted' ? 'completed' : event.type === 'ExecutionFailed' ? 'failed' : 'cancelled';
      const error: StepError | undefined = event.type === 'ExecutionFailed' ? event.error : undefined;
      messages.push(
        childFinishedMessage(
          replyTopic,
          state.parent.executionId,
          state.executionId,
          status,
          event.type === 'ExecutionCompleted' ? event.output : undefined,
          error,
          traceparent,
        ),
      );
    }
  }
  if (messages.length > 0) await writeOutbox(trx, messages);
  const added = timers.filter((t) => !cleared.includes(t.id));
  for (const timer of added) {
    await sql`
      SELECT graphile_worker.add_job(${env.timerTask}, json_build_object('executionId', ${state.executionId}::text, 'timerId', ${timer.id}::text),
        run_at => ${timer.fireAt}::timestamptz, job_key => ${timer.id}, max_attempts => 25)`.execute(trx);
  }
  const removed = cleared.filter((id) => !timers.some((t) => t.id === id));
  if (removed.length > 0) {
    await sql`SELECT graphile_worker.remove_job(k) FROM unnest(${removed}::text[]) AS k`.execute(trx);
  }
}

/** Sub-recipe steps: the child execution starts in the same transaction as the parent's decision. */
async function startChildren(
  trx: Transaction<Database>,
  env: DecisionEnvironment,
  state: ExecutionState,
  events: readonly EngineEvent[],
  traceparent: string,
  replyTopic: string,
) {
  for (const event of events) {
    if (event.type !== 'ChildExecutionRequested') continue;
    let version = event.version;
    if (version === undefined) {
      const { rows } = await sql<{
        version: number | null;
      }>`SELECT max(version) AS version FROM sous.recipe WHERE name = ${event.recipe}`.execute(trx);
      version = rows[0]?.version ?? undefined;
    }
    try {
      if (version === undefined) throw new RecipeNotFoundError(`sub-recipe ${event.recipe} is not registered`);
      await env.plans.get(trx, event.recipe, version);
    } catch (error) {
      if (!(error instanceof RecipeNotFoundError)) throw error;
      // The parent's step fails at once, in this same transaction.
      await runDecision(trx, env, state.executionId, {
        kind: 'child.finished',
        childExecutionId: event.childExecutionId,
        status: 'failed',
        error: { code: error.code, message: error.message, retryable: false },
      });
      continue;
    }
    await runDecision(
      trx,
      env,
      event.childExecutionId,
      {
        kind: 'start',
        executionId: event.childExecutionId,
        recipe: event.recipe,
        version,
        input: event.input,
        parent: { executionId: state.executionId, stepKey: event.stepKey },
      },
      { traceparent: childTraceparent(traceparent), replyTopic },
    );
  }
}
