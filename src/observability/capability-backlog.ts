import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { readCommandLag, type AdminHandle, type CommandLag } from '../kafka/consumer-lag.js';
import { selectWaitingCommands } from '../store/observability.js';
import { withTimeout } from './with-timeout.js';

/** Work waiting for one capability's workers, as the API shows it. */
export interface CapabilityBacklog {
  readonly capability: string;
  /** Attempts dispatched that no worker has reported started. */
  readonly waiting: number;
  readonly oldestWaitingSince: Date | null;
  readonly oldestWaitSeconds: number | null;
  /** Kafka consumer lag of the capability's command topic; null when Kafka did not answer in time. */
  readonly consumerLag: number | null;
}

/**
 * Per capability: what the sous tables say is waiting, and what Kafka says its consumer
 * group has not read. Both, because they fail differently: lag alone misses a command
 * still in the outbox, the tables alone cannot tell a command waiting in a topic from one
 * a busy worker has fetched. A capability appears when either knows it.
 */
export async function readCapabilityBacklog(
  db: Kysely<Database>,
  admin: AdminHandle | undefined,
  timeoutMs: number,
  now: Date = new Date(),
): Promise<CapabilityBacklog[]> {
  const [waiting, lags] = await Promise.all([
    selectWaitingCommands(db),
    admin === undefined
      ? Promise.resolve(undefined)
      : withTimeout(admin.with(readCommandLag), timeoutMs, 'reading consumer lag').catch(() => undefined),
  ]);
  return mergeBacklog(waiting, lags, now);
}

/** Joins the two reads by capability, sorted by name (pure; unit-tested). */
export function mergeBacklog(
  waiting: readonly { capability: string; waiting: number; oldestScheduledAt: Date }[],
  lags: readonly CommandLag[] | undefined,
  now: Date,
): CapabilityBacklog[] {
  const names = new Set([...waiting.map((w) => w.capability), ...(lags ?? []).map((l) => l.capability)]);
  return [...names].sort().map((capability) => {
    const w = waiting.find((x) => x.capability === capability);
    const lag = lags === undefined ? null : (lags.find((l) => l.capability === capability)?.lag ?? 0);
    return {
      capability,
      waiting: w?.waiting ?? 0,
      oldestWaitingSince: w?.oldestScheduledAt ?? null,
      oldestWaitSeconds: w === undefined ? null : Math.max(0, (now.getTime() - w.oldestScheduledAt.getTime()) / 1000),
      consumerLag: lag,
    };
  });
}
