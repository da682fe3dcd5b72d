import { CronExpressionParser } from 'cron-parser';

/*
 * The pure part of scheduled starts: when a cron expression fires in a time zone, which
 * fires an evaluation owes, and what the overlap and missed-run policies make of them. No
 * SQL and no clock here (src/store/schedules.ts, src/control-plane/schedules.ts).
 *
 * Next runs come from cron-parser (maintained, widely used, time zones through luxon):
 * graphile-worker's own cron matcher only knows UTC, and a correct next-run in a zone
 * across daylight-saving changes is exactly the code not to write again.
 */

/** What happens to a fire while the execution this schedule started last still runs. */
export type OverlapPolicy = 'skip' | 'queue_one' | 'allow';
export const OVERLAP_POLICIES: readonly OverlapPolicy[] = ['skip', 'queue_one', 'allow'];

/** What happens to fires missed while no control plane evaluated schedules (downtime). */
export type MissedRunsPolicy = 'skip' | 'run_once';
export const MISSED_RUNS_POLICIES: readonly MissedRunsPolicy[] = ['skip', 'run_once'];

/**
 * A fire is on time when evaluated less than this after its time, missed otherwise. The
 * evaluator runs every minute (graphile-worker's cron, on the minute), so a fire is
 * normally decided within a second or two; 90 s also covers one late or lost tick.
 */
export const MISSED_AFTER_MS = 90_000;

/** Why a cron expression or time zone cannot be used; `undefined` when both are fine. */
export function cronProblem(cron: string, timeZone: string): string | undefined {
  if (!isTimeZone(timeZone)) return `timeZone: "${timeZone}" is not an IANA time zone (e.g. Europe/Paris, UTC)`;
  // Five fields: minutes are the finest unit, as the evaluator runs once a minute.
  const fields = cron.trim().split(/\s+/);
  if (fields.length !== 5) {
    return `cron: "${cron}" must have 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`;
  }
  try {
    nextFireAfter(cron, timeZone, new Date());
  } catch (error) {
    return `cron: "${cron}" is not a cron expression: ${error instanceof Error ? error.message : String(error)}`;
  }
  return undefined;
}

function isTimeZone(timeZone: string): boolean {
  if (timeZone.trim() === '') return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

/**
 * The first fire strictly after `after`, in the zone: a wall-clock time that a
 * daylight-saving change skips fires at the first instant after the gap, one that occurs
 * twice fires once (at the first).
 */
export function nextFireAfter(cron: string, timeZone: string, after: Date): Date {
  return CronExpressionParser.parse(cron, { currentDate: after, tz: timeZone }).next().toDate();
}

/** The last fire at or before `at`, if any is at or after `notBefore`. */
export function lastFireAtOrBefore(cron: string, timeZone: string, at: Date, notBefore: Date): Date | undefined {
  if (at.getTime() < notBefore.getTime()) return undefined;
  // prev() is strictly before its date: 1 ms later makes `at` itself count.
  const expression = CronExpressionParser.parse(cron, { currentDate: new Date(at.getTime() + 1), tz: timeZone });
  if (!expression.hasPrev()) return undefined;
  const fire = expression.prev().toDate();
  return fire.getTime() >= notBefore.getTime() ? fire : undefined;
}

/** The fires an evaluation at `now` owes, from the schedule's cursor (its first undecided fire). */
export interface DueFires {
  /** Fires less than `missedAfterMs` old, oldest first. */
  readonly onTime: readonly Date[];
  /** The latest of the fires older than that (the others are not recorded one by one). */
  readonly latestMissed: Date | undefined;
  /** The new cursor: the first fire after `now`. */
  readonly next: Date;
}

export function dueFires(
  cron: string,
  timeZone: string,
  cursor: Date,
  now: Date,
  missedAfterMs: number = MISSED_AFTER_MS,
): DueFires {
  const next = nextFireAfter(cron, timeZone, now);
  if (cursor.getTime() > now.getTime()) return { onTime: [], latestMissed: undefined, next: cursor };
  const missedBefore = new Date(now.getTime() - missedAfterMs);
  const latestMissed = lastFireAtOrBefore(cron, timeZone, missedBefore, cursor);
  const onTime: Date[] = [];
  // The first on-time candidate: the cursor itself when recent, else the first fire past the missed window.
  let fire = cursor.getTime() > missedBefore.getTime() ? cursor : nextFireAfter(cron, timeZone, missedBefore);
  // Bounded by the window: at most missedAfterMs / 1 minute fires.
  while (fire.getTime() <= now.getTime()) {
    onTime.push(fire);
    fire = nextFireAfter(cron, timeZone, fire);
  }
  return { onTime, latestMissed, next };
}

/** What the overlap policy does with a fire. */
export type OverlapAction = 'start' | 'skip' | 'queue';

/**
 * `running`: the execution this schedule started last has not ended. `queued`: a fire
 * already waits for it (queue_one keeps one: later fires are skipped, not stacked).
 */
export function overlapAction(policy: OverlapPolicy, running: boolean, queued: boolean): OverlapAction {
  if (!running || policy === 'allow') return 'start';
  if (policy === 'skip') return 'skip';
  return queued ? 'skip' : 'queue';
}

/** What one evaluation does with one fire time. */
export interface FireDecision {
  readonly fireTime: Date;
  /** `start_queued`: the fire queue_one held back starts now (its execution ended). */
  readonly action: OverlapAction | 'missed' | 'start_queued';
  /** Started (or held) as the catch-up of missed fires. */
  readonly catchUp: boolean;
}

export interface EvaluationInput {
  readonly overlap: OverlapPolicy;
  readonly missedRuns: MissedRunsPolicy;
  readonly due: DueFires;
  /** The fire queue_one held back, if any. */
  readonly queued: Date | undefined;
  /** Whether the execution this schedule started last still runs. */
  readonly running: boolean;
}

/**
 * Every fire of one evaluation, in order: the held-back fire first (when its blocker
 * ended), then the missed fires (recorded as missed, or the latest one started as the
 * catch-up under `run_once` when no fire is on time: an on-time fire already runs the
 * recipe, a second run for the downtime would only repeat it), then the on-time fires.
 * Each start counts as running for the fires after it.
 */
export function decideFires(input: EvaluationInput): FireDecision[] {
  const decisions: FireDecision[] = [];
  let running = input.running;
  let queued = input.queued !== undefined;
  if (input.queued !== undefined && !running) {
    decisions.push({ fireTime: input.queued, action: 'start_queued', catchUp: false });
    queued = false;
    running = true;
  }
  const candidates: { fireTime: Date; catchUp: boolean }[] = [];
  const missed = input.due.latestMissed;
  if (missed !== undefined) {
    if (input.missedRuns === 'run_once' && input.due.onTime.length === 0) {
      candidates.push({ fireTime: missed, catchUp: true });
    } else {
      decisions.push({ fireTime: missed, action: 'missed', catchUp: false });
    }
  }
  candidates.push(...input.due.onTime.map((fireTime) => ({ fireTime, catchUp: false })));
  for (const { fireTime, catchUp } of candidates) {
    const action = overlapAction(input.overlap, running, queued);
    decisions.push({ fireTime, action, catchUp });
    if (action === 'start') running = true;
    if (action === 'queue') queued = true;
  }
  return decisions;
}
