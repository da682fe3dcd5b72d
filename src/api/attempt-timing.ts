/** An attempt's times, as sous.step_attempt holds them. */
export interface AttemptTimes {
  readonly attempt: number;
  readonly status: string;
  readonly scheduledAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
}

export interface AttemptTiming {
  readonly attempt: number;
  readonly waitSeconds: number | null;
  readonly runSeconds: number | null;
  readonly waiting: boolean;
  readonly running: boolean;
}

const seconds = (from: Date, to: Date) => Math.max(0, (to.getTime() - from.getTime()) / 1000);

/**
 * How long an attempt waited for a worker and ran. Without a start, an attempt still
 * `scheduled` is waiting (to now); one that ended unstarted (timed out before a worker
 * took it) waited until it ended; a dead-lettered one unstarted has no end to measure.
 */
export function attemptTiming(a: AttemptTimes, now: Date): AttemptTiming {
  const waiting = a.startedAt === null && a.status === 'scheduled';
  const running = a.startedAt !== null && a.status === 'running';
  const waitEnd = a.startedAt ?? (waiting ? now : a.finishedAt);
  const runEnd = a.finishedAt ?? (running ? now : null);
  return {
    attempt: a.attempt,
    waitSeconds: waitEnd === null ? null : seconds(a.scheduledAt, waitEnd),
    runSeconds: a.startedAt === null || runEnd === null ? null : seconds(a.startedAt, runEnd),
    waiting,
    running,
  };
}
