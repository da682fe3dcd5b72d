import { parseDuration } from '../recipe/duration.js';
import type { Retention } from '../recipe/plan.js';
import { MIN_RETENTION_MS } from '../recipe/schema.js';
import type { ExpiredExecutionRow } from '../store/retention.js';

/*
 * The pure part of retention: what the settings mean, which cutoff applies to which
 * recipe, and how many trees one batch takes. No SQL here (src/store/retention.ts).
 */

/**
 * The control plane's retention: `off` runs no purge at all; `forever` keeps executions
 * of recipes that declare no retention (those that declare one are still purged); a
 * number is the age in milliseconds after which finished executions are purged.
 */
export type RetentionSetting = 'off' | 'forever' | number;

/** 30 days: the default age of finished executions before they are purged. */
export const DEFAULT_RETENTION_MS = 30 * 86_400_000;

export { MIN_RETENTION_MS };

/**
 * Reads a retention setting as written in SOUS_RETENTION: `off`, `forever`, or a duration
 * (`30d`, `12h`, `90m`, or milliseconds) of at least 1 minute. Undefined when it is not one.
 */
export function parseRetentionSetting(value: string): RetentionSetting | undefined {
  const text = value.trim().toLowerCase();
  if (text === 'off' || text === 'forever') return text;
  const ms = parseDuration(/^\d+$/.test(text) ? Number(text) : text);
  return ms !== undefined && ms >= MIN_RETENTION_MS ? ms : undefined;
}

/**
 * A recipe's retention as stored in its plan (plan.retention), or undefined when the plan
 * declares none or holds something this release does not understand: such a recipe gets
 * the default, which never purges sooner than the operator chose.
 */
export function planRetention(stored: unknown): Retention | undefined {
  if (stored === 'forever') return 'forever';
  if (typeof stored !== 'object' || stored === null || !('maxAgeMs' in stored)) return undefined;
  const { maxAgeMs } = stored;
  return typeof maxAgeMs === 'number' && Number.isFinite(maxAgeMs) && maxAgeMs >= MIN_RETENTION_MS
    ? { maxAgeMs }
    : undefined;
}

/** Recipe names sharing one cutoff: their root executions finished before it are purged. */
export interface PurgeGroup {
  readonly maxAgeMs: number;
  readonly finishedBefore: Date;
  readonly recipeNames: readonly string[];
}

/**
 * Groups recipe names by the age that applies to them (their own, else the default),
 * leaving out those kept forever, shortest age first. A recipe's own retention wins over
 * the default whichever is longer.
 */
export function purgeGroups(
  recipes: readonly { readonly recipeName: string; readonly retention: unknown }[],
  setting: Exclude<RetentionSetting, 'off'>,
  now: Date,
): PurgeGroup[] {
  const byAge = new Map<number, string[]>();
  for (const { recipeName, retention } of recipes) {
    const own = planRetention(retention);
    const effective = own ?? setting;
    if (effective === 'forever') continue;
    const age = typeof effective === 'number' ? effective : effective.maxAgeMs;
    const names = byAge.get(age) ?? [];
    names.push(recipeName);
    byAge.set(age, names);
  }
  return [...byAge.entries()]
    .sort(([a], [b]) => a - b)
    .map(([maxAgeMs, recipeNames]) => ({
      maxAgeMs,
      finishedBefore: new Date(now.getTime() - maxAgeMs),
      recipeNames: recipeNames.sort(),
    }));
}

/** The trees one batch deletes, the ids of their executions, and the time their replies fell in. */
export interface PurgeBatch {
  readonly roots: number;
  readonly ids: string[];
  readonly events: number;
  readonly processedBetween: { readonly from: Date; readonly to: Date };
}

/**
 * Replies are recorded when the control plane applies them, between an execution's start
 * and its finish; the margin covers clock differences between control planes and a
 * reply applied just after the finish (a late reply of a cancelled execution's attempt).
 */
export const PROCESSED_MARGIN_MS = 3_600_000;

/**
 * Takes whole trees, in the order locked, until `maxEvents` events would be exceeded:
 * one forEach of 100,000 items holds more rows than 500 ordinary executions, and a batch
 * is bounded by what it deletes, not by how many roots it names. The first tree is
 * always taken, so a tree larger than the bound is still purged (alone). Undefined when
 * there is nothing to take.
 */
export function takeBatch(rows: readonly ExpiredExecutionRow[], maxEvents: number): PurgeBatch | undefined {
  const trees = new Map<string, ExpiredExecutionRow[]>();
  for (const row of rows) {
    const tree = trees.get(row.rootId) ?? [];
    tree.push(row);
    trees.set(row.rootId, tree);
  }
  const ids: string[] = [];
  let events = 0;
  let roots = 0;
  let from = Number.POSITIVE_INFINITY;
  let to = Number.NEGATIVE_INFINITY;
  for (const tree of trees.values()) {
    const treeEvents = tree.reduce((sum, r) => sum + r.events, 0);
    if (roots > 0 && events + treeEvents > maxEvents) break;
    roots++;
    events += treeEvents;
    for (const r of tree) {
      ids.push(r.id);
      from = Math.min(from, r.createdAt.getTime());
      to = Math.max(to, r.finishedAt.getTime());
    }
  }
  if (roots === 0) return undefined;
  return {
    roots,
    ids,
    events,
    processedBetween: { from: new Date(from - PROCESSED_MARGIN_MS), to: new Date(to + PROCESSED_MARGIN_MS) },
  };
}
