import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { AttemptRow, StepRow } from '../engine/projection.js';
import {
  insertSupersededAttempts,
  placeAttempts,
  supersedeStoredAttempts,
  updateStoredAttempts,
  type AttemptUpdateRow,
} from './attempts.js';
import { appendEvents, type EventAppend } from './events.js';
import {
  insertExecutions,
  updateExecutions,
  upsertSnapshots,
  type ExecutionChange,
  type ExecutionWrite,
  type SnapshotWrite,
} from './executions.js';
import { insertForeachItems, type ItemList } from './foreach-items.js';
import { insertOutboxRows, type OutboxRow } from './outbox.js';
import { insertWaitingCommands, type WaitingCommandRow } from './waiting-commands.js';
import { insertPayloads, type PayloadRow } from './payloads.js';
import { deleteForgottenSteps, upsertSteps, type ForgottenSteps } from './steps.js';
import { addTimerJobs, removeTimerJobs, type TimerJob } from './timers.js';

/**
 * Everything a batch of decisions writes, already net of itself: one row per step and
 * per attempt (several decisions of one execution merged), steps a rerun forgot listed
 * once, timers both added and cleared within the batch left out.
 */
export interface DecisionWrites {
  /** Executions started by these decisions (inserted). */
  readonly newExecutions: readonly ExecutionWrite[];
  /** Executions that existed and were locked (updated). */
  readonly changedExecutions: readonly ExecutionChange[];
  /** State snapshots due (sous.execution_snapshot). */
  readonly snapshots: readonly SnapshotWrite[];
  readonly events: readonly EventAppend[];
  readonly forgotten: readonly ForgottenSteps[];
  readonly items: readonly ItemList[];
  readonly steps: readonly StepRow[];
  readonly attemptInserts: readonly AttemptRow[];
  readonly attemptUpdates: readonly AttemptUpdateRow[];
  readonly payloads: readonly PayloadRow[];
  readonly outbox: readonly OutboxRow[];
  /** Commands no live shard can take yet: held instead of sent (sous.waiting_command). */
  readonly waiting: readonly WaitingCommandRow[];
  readonly timersAdded: readonly TimerJob[];
  readonly timersRemoved: readonly string[];
}

/**
 * Writes a batch of decisions, in the caller's transaction (which holds the locks of
 * the changed executions): one set-based statement per table, whatever the number of
 * executions and replies, in the order the rows depend on each other (executions before
 * their events, steps and items; a replaced attempt copied before its step row takes the
 * new one; forgotten rows before the rows that replace them). The hot-path tables have no
 * foreign keys (0020): this order, under the executions' locks, is what keeps them whole,
 * and verifyExecution checks it.
 */
export async function commitDecision(trx: Kysely<Database>, writes: DecisionWrites, timerTask: string): Promise<void> {
  await insertExecutions(trx, writes.newExecutions);
  await updateExecutions(trx, writes.changedExecutions);
  await upsertSnapshots(trx, writes.snapshots);
  await appendEvents(trx, writes.events);
  await deleteForgottenSteps(trx, writes.forgotten);
  await insertForeachItems(trx, writes.items);
  // A step's current attempt is on its row (0022): what a new attempt replaces is copied
  // to superseded_attempt before the row takes the new one.
  const attempts = placeAttempts(writes.steps, writes.attemptInserts, writes.attemptUpdates);
  await supersedeStoredAttempts(trx, attempts.replacedStored, attempts.replacedUpdates);
  await insertSupersededAttempts(trx, attempts.replacedNew);
  await updateStoredAttempts(trx, attempts.strayUpdates);
  await upsertSteps(trx, attempts.steps);
  await insertPayloads(trx, writes.payloads);
  await insertOutboxRows(trx, writes.outbox);
  await insertWaitingCommands(trx, writes.waiting);
  await addTimerJobs(trx, timerTask, writes.timersAdded);
  await removeTimerJobs(trx, writes.timersRemoved);
}
