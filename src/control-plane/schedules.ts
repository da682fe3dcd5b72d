import type { Task } from 'graphile-worker';
import type { Kysely, Transaction } from 'kysely';
import { z } from 'zod';
import type { Database } from '../db/schema.js';
import { TERMINAL_STATUSES } from '../engine/state.js';
import { SousError } from '../errors.js';
import type { Logger } from '../logger.js';
import { isUuid, newId } from '../uuid.js';
import {
  cronProblem,
  decideFires,
  dueFires,
  MISSED_AFTER_MS,
  MISSED_RUNS_POLICIES,
  nextFireAfter,
  OVERLAP_POLICIES,
  type FireDecision,
  type MissedRunsPolicy,
  type OverlapPolicy,
} from './schedule-policy.js';
import {
  deleteScheduleRow,
  executionStatus,
  insertRun,
  insertSchedule,
  lockDueSchedule,
  lockSchedule,
  pauseScheduleRow,
  pruneRuns,
  resumeScheduleRow,
  selectDueScheduleIds,
  settleRun,
  updateScheduleAfterEvaluation,
  type ScheduleRow,
} from '../store/schedules.js';
import { auditedTransaction, type AuditHook } from '../store/audit.js';
import { latestVersion } from './recipes.js';
import { startExecutions } from './executions.js';
import type { DecisionEnvironment } from './run-decision.js';

/*
 * Scheduled starts. A schedule is data (sous.schedule); one graphile-worker cron task,
 * every minute, evaluates the schedules that are due (docs/schedules.md says why this
 * and not one graphile cron item per schedule). Each schedule is evaluated in its own
 * transaction under its row lock: its fires are recorded in sous.schedule_run (unique per
 * fire time) and its executions started in that same transaction, and its cursor moves
 * past them, so a fire starts exactly once whatever the number of control planes and
 * however often the job is retried.
 */

/** The graphile-worker task that evaluates schedules (the cron's tick time is not used: the clock is). */
export const SCHEDULE_TASK = 'sous_schedules';
/** Every minute, on the minute: graphile's cron runs each tick once across all control planes. */
export const SCHEDULE_CRONTAB = `* * * * * ${SCHEDULE_TASK}`;
/** Runs kept in a schedule's history (older ones are pruned as it is evaluated). */
export const RUN_HISTORY_MS = 30 * 86_400_000;

/** A schedule's definition is not usable (bad cron, time zone, name or policy). */
export class ScheduleInvalidError extends SousError {
  readonly code = 'SOUS_SCHEDULE_INVALID';
  readonly retryable = false;
}

/** Another schedule has this name (with another definition). */
export class ScheduleExistsError extends SousError {
  readonly code = 'SOUS_SCHEDULE_EXISTS';
  readonly retryable = false;
}

/** No schedule has this id. */
export class ScheduleNotFoundError extends SousError {
  readonly code = 'SOUS_SCHEDULE_NOT_FOUND';
  readonly retryable = false;
}

const definitionSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, 'name: 1 to 100 letters, digits, ".", "_" or "-"'),
  recipe: z.string().min(1, 'recipe: name a registered recipe'),
  version: z.number().int().positive('version must be a positive integer').optional(),
  cron: z.string().min(1, 'cron: give a cron expression such as "0 9 * * 1-5"'),
  timeZone: z.string().default('UTC'),
  input: z.unknown().default({}),
  overlap: z.enum(OVERLAP_POLICIES as [OverlapPolicy, ...OverlapPolicy[]]).default('skip'),
  missedRuns: z.enum(MISSED_RUNS_POLICIES as [MissedRunsPolicy, ...MissedRunsPolicy[]]).default('run_once'),
});

/** What a schedule is created with. */
export interface ScheduleDefinition {
  /** Unique: creating the same definition under the same name again returns the first. */
  readonly name: string;
  readonly recipe: string;
  /** @default the recipe's latest version when each run starts */
  readonly version?: number;
  /** Five fields: minute hour day-of-month month day-of-week (e.g. `0 9 * * 1-5`). */
  readonly cron: string;
  /** IANA time zone the cron expression reads in. @default 'UTC' */
  readonly timeZone?: string;
  /** Input of every execution it starts. @default {} */
  readonly input?: unknown;
  /** A fire while the execution it started last still runs. @default 'skip' */
  readonly overlap?: OverlapPolicy;
  /** Fires missed while no control plane ran (downtime). @default 'run_once' */
  readonly missedRuns?: MissedRunsPolicy;
}

export type ParsedDefinition = z.output<typeof definitionSchema>;

/** The definition with its defaults; ScheduleInvalidError naming every problem otherwise. */
export function parseScheduleDefinition(definition: ScheduleDefinition): ParsedDefinition {
  const parsed = definitionSchema.safeParse(definition);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const path = i.path.join('.') || '(schedule)';
      return i.message.startsWith(`${path}:`) ? i.message : `${path}: ${i.message}`;
    });
    throw new ScheduleInvalidError(`invalid schedule: ${problems.join('; ')}`, { cause: parsed.error });
  }
  const problem = cronProblem(parsed.data.cron, parsed.data.timeZone);
  if (problem !== undefined) throw new ScheduleInvalidError(`invalid schedule: ${problem}`);
  return parsed.data;
}

/** A schedule as the control plane shows it. */
export interface Schedule {
  readonly id: string;
  readonly name: string;
  readonly recipe: string;
  /** Null: the recipe's latest version when each run starts. */
  readonly version: number | null;
  readonly cron: string;
  readonly timeZone: string;
  readonly input: unknown;
  readonly overlap: OverlapPolicy;
  readonly missedRuns: MissedRunsPolicy;
  readonly paused: boolean;
  /** The next fire not decided yet; null while paused. */
  readonly nextRunAt: Date | null;
  /** The fire held back by queue_one until the running execution ends. */
  readonly queuedRunAt: Date | null;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export function scheduleOf(row: ScheduleRow): Schedule {
  return {
    id: row.id,
    name: row.name,
    recipe: row.recipe_name,
    version: row.recipe_version,
    cron: row.cron,
    timeZone: row.time_zone,
    input: row.input,
    overlap: row.overlap as OverlapPolicy,
    missedRuns: row.missed_runs as MissedRunsPolicy,
    paused: row.paused_at !== null,
    nextRunAt: row.paused_at === null ? row.next_fire_at : null,
    queuedRunAt: row.queued_fire_at,
    createdBy: row.created_by,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function sameDefinition(row: ScheduleRow, d: ParsedDefinition): boolean {
  return (
    row.recipe_name === d.recipe &&
    row.recipe_version === (d.version ?? null) &&
    row.cron === d.cron &&
    row.time_zone === d.timeZone &&
    row.overlap === d.overlap &&
    row.missed_runs === d.missedRuns &&
    JSON.stringify(row.input) === JSON.stringify(d.input)
  );
}

/**
 * Creates a schedule; its first run is the first fire after `now`. Retried with the same
 * definition, it returns the schedule made the first time (`created: false`).
 */
export async function createSchedule(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  definition: ScheduleDefinition,
  actor: string,
  now: Date = env.now(),
  audit?: AuditHook,
): Promise<{ schedule: ScheduleRow; created: boolean }> {
  const d = parseScheduleDefinition(definition);
  // RecipeNotFoundError now, not at the first fire.
  await env.plans.get(db, d.recipe, d.version ?? (await latestVersion(db, d.recipe)));
  // The refusal below is in the transaction: an audit row must not commit with it.
  return auditedTransaction(db, audit, async (trx) => {
    const { row, created } = await insertSchedule(trx, {
      id: newId(),
      name: d.name,
      recipeName: d.recipe,
      recipeVersion: d.version,
      cron: d.cron,
      timeZone: d.timeZone,
      input: d.input,
      overlap: d.overlap,
      missedRuns: d.missedRuns,
      nextFireAt: nextFireAfter(d.cron, d.timeZone, now),
      createdBy: actor,
    });
    if (!created && !sameDefinition(row, d)) {
      throw new ScheduleExistsError(`a schedule named ${d.name} exists with another definition: delete it first`);
    }
    return { schedule: row, created };
  });
}

/** Stops starting runs (a queued run waits too); pausing a paused schedule changes nothing. */
export async function pauseSchedule(
  db: Kysely<Database>,
  id: string,
  now: Date,
  audit?: AuditHook,
): Promise<ScheduleRow> {
  if (!isUuid(id)) notFound(id);
  // notFound inside: no audit row commits for a schedule that is not there.
  return auditedTransaction(db, audit, async (trx) => (await pauseScheduleRow(trx, id, now)) ?? notFound(id));
}

/** Runs again from the first fire after `now`: fires while paused are not runs, nor missed ones. */
export async function resumeSchedule(
  db: Kysely<Database>,
  id: string,
  now: Date,
  audit?: AuditHook,
): Promise<ScheduleRow> {
  if (!isUuid(id)) notFound(id);
  return auditedTransaction(db, audit, async (trx) => {
    const found = await lockSchedule(trx, id);
    const row =
      found === undefined
        ? undefined
        : await resumeScheduleRow(trx, id, now, nextFireAfter(found.cron, found.time_zone, now));
    return row ?? notFound(id);
  });
}

/** Deletes a schedule and its history (executions it started stay); false when there was none. */
export async function deleteSchedule(db: Kysely<Database>, id: string, audit?: AuditHook): Promise<boolean> {
  return isUuid(id) && (await auditedTransaction(db, audit, (trx) => deleteScheduleRow(trx, id)));
}

function notFound(id: string): never {
  throw new ScheduleNotFoundError(`no schedule ${id}${isUuid(id) ? '' : ' (a schedule id is a UUID)'}`);
}

export interface EvaluateOptions {
  /** The clock. @default env.now() */
  readonly now?: Date;
  /** Only these schedules (tests). @default every due schedule */
  readonly scheduleIds?: readonly string[];
  /** A fire older than this when evaluated is missed. @default MISSED_AFTER_MS (90 s) */
  readonly missedAfterMs?: number;
  /** Schedules evaluated per run at most (the next run goes on). @default 1000 */
  readonly limit?: number;
  /** Wraps each schedule's transaction (the control plane counts its decisions). */
  readonly observe?: <T>(work: () => Promise<T>) => Promise<T>;
  readonly log?: Logger;
}

/** What one evaluation did. */
export interface EvaluationReport {
  readonly schedules: number;
  readonly started: number;
  readonly skipped: number;
  readonly queued: number;
  readonly missed: number;
  readonly failed: number;
}

/**
 * Evaluates every due schedule, one transaction each. A transient error (a lost
 * connection) leaves that schedule as it was for the next run and is thrown once the
 * others are done; a start the control plane refuses (the recipe is gone) is recorded
 * as a failed run, so a broken schedule does not retry the same fire forever.
 */
export async function evaluateSchedules(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  options: EvaluateOptions = {},
): Promise<EvaluationReport> {
  const now = options.now ?? env.now();
  const observe = options.observe ?? (<T>(work: () => Promise<T>) => work());
  const counts = { schedules: 0, started: 0, skipped: 0, queued: 0, missed: 0, failed: 0 };
  let transient: Error | undefined;
  for (const id of await selectDueScheduleIds(db, now, options.limit ?? 1000, options.scheduleIds)) {
    const once = (refused?: SousError) =>
      observe(() => db.transaction().execute((trx) => evaluateOne(trx, env, id, now, options, refused)));
    let decided: Decided[] | undefined;
    try {
      try {
        decided = await once();
      } catch (error) {
        if (!(error instanceof SousError) || error.retryable) throw error;
        options.log?.warn({ scheduleId: id, code: error.code, reason: error.message }, 'scheduled start refused');
        decided = (await once(error))?.map((d) => (isStart(d) ? { ...d, action: 'failed' as const } : d));
      }
    } catch (error) {
      options.log?.warn({ scheduleId: id, reason: String(error) }, 'schedule not evaluated; next run retries');
      transient ??= error instanceof Error ? error : new Error(String(error));
    }
    if (decided === undefined) continue;
    counts.schedules++;
    for (const d of decided) counts[COUNTED[d.action]]++;
  }
  if (transient !== undefined) throw transient;
  return counts;
}

const COUNTED = {
  start: 'started',
  start_queued: 'started',
  skip: 'skipped',
  queue: 'queued',
  missed: 'missed',
  failed: 'failed',
} as const;

const isStart = (d: Decided) => d.action === 'start' || d.action === 'start_queued';

type Decided = Omit<FireDecision, 'action'> & { readonly action: FireDecision['action'] | 'failed' };

/**
 * One schedule, under its row lock: decide its fires, record them, start what starts and
 * move its cursor. `refused`: a start failed for good the first time; record the starts as
 * failed runs with that error instead. Undefined when another evaluator holds the row or
 * it is no longer due.
 */
async function evaluateOne(
  trx: Transaction<Database>,
  env: DecisionEnvironment,
  id: string,
  now: Date,
  options: EvaluateOptions,
  refused: SousError | undefined,
): Promise<Decided[] | undefined> {
  const row = await lockDueSchedule(trx, id, now);
  if (row === undefined) return undefined;
  const due = dueFires(row.cron, row.time_zone, row.next_fire_at, now, options.missedAfterMs ?? MISSED_AFTER_MS);
  const status = row.last_execution_id === null ? undefined : await executionStatus(trx, row.last_execution_id);
  const decisions = decideFires({
    overlap: row.overlap as OverlapPolicy,
    missedRuns: row.missed_runs as MissedRunsPolicy,
    due,
    queued: row.queued_fire_at ?? undefined,
    running: status !== undefined && !(TERMINAL_STATUSES as readonly string[]).includes(status),
  });
  let queuedFireAt = row.queued_fire_at;
  let lastExecutionId = row.last_execution_id;
  const error = refused === undefined ? undefined : { code: refused.code, message: refused.message };
  for (const d of decisions) {
    const base = { fireTime: d.fireTime, catchUp: d.catchUp };
    if (d.action === 'missed' || d.action === 'skip') {
      await insertRun(trx, row.id, { ...base, outcome: d.action === 'skip' ? 'skipped' : 'missed' });
    } else if (d.action === 'queue') {
      if (await insertRun(trx, row.id, { ...base, outcome: 'queued' })) queuedFireAt = d.fireTime;
    } else {
      // A new fire's row is written first: its key refuses a fire decided before.
      if (d.action === 'start' && !(await insertRun(trx, row.id, { ...base, outcome: 'started' }))) continue;
      if (d.action === 'start_queued') queuedFireAt = null;
      if (error !== undefined) {
        await settleRun(trx, row.id, { ...base, outcome: 'failed', error });
        continue;
      }
      const [started] = await startExecutions(trx, env, [
        {
          recipe: row.recipe_name,
          ...(row.recipe_version === null ? {} : { version: row.recipe_version }),
          input: row.input,
          // A second guard, and what ties the execution to its schedule and fire.
          idempotencyKey: `schedule:${row.id}:${d.fireTime.toISOString()}`,
        },
      ]);
      if (started === undefined) throw new Error(`schedule ${row.id}: the start gave no execution`);
      await settleRun(trx, row.id, { ...base, outcome: 'started', executionId: started.executionId });
      lastExecutionId = started.executionId;
    }
  }
  await updateScheduleAfterEvaluation(trx, row.id, { nextFireAt: due.next, queuedFireAt, lastExecutionId });
  await pruneRuns(trx, row.id, new Date(now.getTime() - RUN_HISTORY_MS));
  if (decisions.length > 0) {
    options.log?.info(
      {
        scheduleId: row.id,
        schedule: row.name,
        fires: decisions.map((d) => `${d.fireTime.toISOString()} ${d.action}`),
      },
      'schedule evaluated',
    );
  }
  return decisions;
}

/** The cron task: one evaluation at the time it runs, logged when it did anything. */
export function scheduleTask(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  observe: <T>(work: () => Promise<T>) => Promise<T>,
  log: Logger,
  evaluated: (report: EvaluationReport) => void = () => undefined,
): Task {
  return async () => {
    const report = await evaluateSchedules(db, env, { observe, log });
    evaluated(report);
    // A schedule whose queued fire still waits is evaluated every minute for nothing: not logged.
    const { schedules: _evaluated, ...decided } = report;
    if (Object.values(decided).some((n) => n > 0)) log.info({ schedules: report }, 'schedules evaluated');
  };
}
