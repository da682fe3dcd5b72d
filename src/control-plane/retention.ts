import type { Task } from 'graphile-worker';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logger.js';
import {
  allowPurge,
  deleteExecutions,
  lockExpiredExecutionTrees,
  selectRecipeRetentions,
  type PurgedRows,
} from '../store/retention.js';
import { deleteRegionInboxBefore } from '../store/region-inbox.js';
import { purgeGroups, takeBatch, type RetentionSetting } from './retention-policy.js';

/*
 * Retention: a graphile-worker cron task purges finished executions older than their
 * recipe's retention (else the control plane's), with every row of theirs, in bounded
 * batches of one short transaction each. Several control planes may run it at once:
 * each batch locks its executions with SKIP LOCKED, so two runs take different ones.
 */

/** The graphile-worker task name of the purge. */
export const RETENTION_TASK = 'sous_retention';

/**
 * Every minute: graphile's cron runs each tick once across all control planes. A run
 * with nothing due costs one read of the recipes and one index probe per retention; a
 * run does at most `maxRunMs` (20 s) of work, so under a backlog it holds one of the
 * timer slots (timers share the runner's concurrency) a third of the time, and purges
 * about 250,000 events a minute (bench: ~13,000 events/s on 2 cores).
 */
export const RETENTION_CRONTAB = `* * * * * ${RETENTION_TASK}`;

/** The crontab lines of the purge: none when retention is off. */
export function retentionCrontab(retention: RetentionSetting): string[] {
  return retention === 'off' ? [] : [RETENTION_CRONTAB];
}

export interface PurgeOptions {
  /** The default retention; `off` purges nothing. */
  readonly retention: RetentionSetting;
  /** Root executions locked per batch (each batch is one transaction). */
  readonly batchSize: number;
  /** Events deleted per batch at most (one tree larger than this is deleted alone). @default 100000 */
  readonly maxEventsPerBatch?: number;
  /** A run stops starting batches after this long; the next run goes on. @default 20000 */
  readonly maxRunMs?: number;
  /** Longest wait for a row lock inside a batch. @default 5000 */
  readonly lockTimeoutMs?: number;
  /** Only these recipe names (tests; an operator purging one recipe). @default every recipe */
  readonly recipeNames?: readonly string[];
  /** The clock. @default new Date() */
  readonly now?: Date;
}

/** What one run purged. */
export interface PurgeReport extends PurgedRows {
  readonly batches: number;
  /** Whether the run stopped on its time bound with expired executions left for the next run. */
  readonly more: boolean;
  /** Rows of sous.region_inbox purged (commands received from other regions). */
  readonly regionInbox: number;
}

const EMPTY: PurgeReport = {
  batches: 0,
  more: false,
  regionInbox: 0,
  executions: 0,
  events: 0,
  steps: 0,
  attempts: 0,
  foreachItems: 0,
  payloads: 0,
  processedMessages: 0,
};

function add(report: PurgeReport, rows: PurgedRows): PurgeReport {
  return {
    batches: report.batches + 1,
    more: report.more,
    regionInbox: report.regionInbox,
    executions: report.executions + rows.executions,
    events: report.events + rows.events,
    steps: report.steps + rows.steps,
    attempts: report.attempts + rows.attempts,
    foreachItems: report.foreachItems + rows.foreachItems,
    payloads: report.payloads + rows.payloads,
    processedMessages: report.processedMessages + rows.processedMessages,
  };
}

/**
 * Purges the expired executions, group by group (recipes sharing an age), batch by
 * batch, until none is left or the run's time is up.
 */
export async function purgeExpiredExecutions(db: Kysely<Database>, options: PurgeOptions): Promise<PurgeReport> {
  if (options.retention === 'off') return EMPTY;
  const started = Date.now();
  const maxRunMs = options.maxRunMs ?? 20_000;
  const maxEvents = options.maxEventsPerBatch ?? 100_000;
  const lockTimeoutMs = options.lockTimeoutMs ?? 5_000;
  const only = options.recipeNames === undefined ? undefined : new Set(options.recipeNames);
  const recipes = (await selectRecipeRetentions(db)).filter((r) => only === undefined || only.has(r.recipeName));
  let report = EMPTY;
  for (const group of purgeGroups(recipes, options.retention, options.now ?? new Date())) {
    for (;;) {
      if (Date.now() - started >= maxRunMs) return { ...report, more: true };
      const purged = await db.transaction().execute(async (trx) => {
        await allowPurge(trx, lockTimeoutMs);
        const rows = await lockExpiredExecutionTrees(trx, group.recipeNames, group.finishedBefore, options.batchSize);
        const batch = takeBatch(rows, maxEvents);
        return batch === undefined ? undefined : deleteExecutions(trx, batch.ids, batch.processedBetween);
      });
      if (purged === undefined) break;
      report = add(report, purged);
    }
  }
  return report;
}

/**
 * A region inbox row must outlive every redelivery of its command: the relay, Kafka or a
 * consumer restart can only redeliver a record the inbox topic still holds, and Kafka keeps
 * records 7 days by default (retention.ms). So rows are kept as long as finished executions
 * are, and never less than 7 days; with retention `off` or `forever`, forever.
 */
export const MIN_REGION_INBOX_KEEP_MS = 7 * 86_400_000;

/** Purges old sous.region_inbox rows in batches of `batchSize`, for at most `maxRunMs`. */
export async function purgeRegionInbox(
  db: Kysely<Database>,
  retention: RetentionSetting,
  {
    batchSize = 10_000,
    maxRunMs = 20_000,
    now = new Date(),
  }: { batchSize?: number; maxRunMs?: number; now?: Date } = {},
): Promise<number> {
  if (typeof retention !== 'number') return 0;
  const before = new Date(now.getTime() - Math.max(retention, MIN_REGION_INBOX_KEEP_MS));
  const started = Date.now();
  let purged = 0;
  for (;;) {
    const n = await deleteRegionInboxBefore(db, before, batchSize);
    purged += n;
    if (n < batchSize || Date.now() - started >= maxRunMs) return purged;
  }
}

/** The cron task: one run of purgeExpiredExecutions, logged and handed to `purged` when it purged anything. */
export function retentionTask(
  db: Kysely<Database>,
  options: PurgeOptions,
  log: Logger,
  purged: (report: PurgeReport) => void = () => undefined,
): Task {
  return async () => {
    const executions = await purgeExpiredExecutions(db, options);
    const report = { ...executions, regionInbox: await purgeRegionInbox(db, options.retention) };
    if (report.executions === 0 && report.regionInbox === 0 && !report.more) return;
    log.info({ retention: report }, 'retention purge');
    purged(report);
  };
}
