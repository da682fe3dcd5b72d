import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { replay } from '../engine/evolve.js';
import { TERMINAL_STATUSES, type ExecutionState } from '../engine/state.js';
import {
  lockExecutionHeads,
  selectStateSnapshots,
  type LockedExecution,
  type LockedHead,
  type StateSnapshot,
} from '../store/executions.js';
import { ExecutionNotFoundError } from './errors.js';
import type { PlanCache } from './plan-cache.js';

/** How the state of running executions is kept between decisions. */
export interface ExecutionStatesOptions {
  /**
   * Running executions whose state this process keeps in memory between decisions (the
   * least recently decided are dropped first; a dropped one is rebuilt from its snapshot
   * and events on its next decision). @default 10000
   */
  readonly cacheSize?: number;
  /**
   * A snapshot of the state (sous.execution_snapshot) is written once this many events
   * have been appended since the last one (or since the start): a decision without the
   * state cached replays fewer than this many events. @default 128
   */
  readonly snapshotEvery?: number;
}

interface Cached {
  readonly writtenBy: string;
  readonly seq: number;
  readonly state: ExecutionState;
}

/**
 * The execution state as decisions see it. The event log is the truth and a snapshot is
 * written every `snapshotEvery` events, so a step does not rewrite the whole
 * state. Between decisions the state is cached under the id of the decision batch that
 * wrote it (`written_by`, a fresh id per batch): the cached copy is used only when the
 * locked row still carries that id and seq. Any other writer — another control-plane
 * process, the API, a rebuild, or a batch of this process that never committed (its id
 * was never stored) — leaves a different id, and the state is rebuilt from the snapshot
 * and the events after it. So the cache is never trusted on its own, and a crash between
 * any two lines loses nothing but the cache.
 */
export class ExecutionStates {
  readonly #cache = new Map<string, Cached>();
  readonly cacheSize: number;
  readonly snapshotEvery: number;
  /** Decisions that found their state cached / had to read it. */
  hits = 0;
  misses = 0;

  constructor(options: ExecutionStatesOptions = {}) {
    this.cacheSize = options.cacheSize ?? 10_000;
    this.snapshotEvery = options.snapshotEvery ?? 128;
    if (!Number.isInteger(this.cacheSize) || this.cacheSize < 0) {
      throw new RangeError(`cacheSize must be an integer >= 0, got ${String(options.cacheSize)}`);
    }
    if (!Number.isInteger(this.snapshotEvery) || this.snapshotEvery < 1) {
      throw new RangeError(`snapshotEvery must be an integer >= 1, got ${String(options.snapshotEvery)}`);
    }
  }

  /**
   * Locks executions (in id order, one statement) and gives each its state at last_seq:
   * from the cache when the row names the batch that cached it, else from the snapshot
   * and the events after it (one more statement for all the misses).
   */
  async lock(
    trx: Kysely<Database>,
    plans: PlanCache,
    executionIds: readonly string[],
  ): Promise<Map<string, LockedExecution>> {
    const heads = await lockExecutionHeads(trx, executionIds);
    const out = new Map<string, LockedExecution>();
    const missing: LockedHead[] = [];
    for (const head of heads.values()) {
      const cached = this.#cache.get(head.id);
      if (cached !== undefined && cached.writtenBy === head.written_by && cached.seq === head.last_seq) {
        // Most recently used last: Map iteration order is the eviction order.
        this.#cache.delete(head.id);
        this.#cache.set(head.id, cached);
        out.set(head.id, { ...head, state: cached.state });
        this.hits++;
      } else {
        missing.push(head);
      }
    }
    if (missing.length > 0) {
      this.misses += missing.length;
      const snapshots = await selectStateSnapshots(
        trx,
        missing.map((h) => h.id),
      );
      for (const head of missing) {
        const snapshot = snapshots.get(head.id);
        if (snapshot === undefined) continue;
        out.set(head.id, { ...head, state: await stateOf(trx, plans, snapshot) });
      }
    }
    return out;
  }

  /**
   * Whether a decision writing up to `lastSeq` stores a snapshot of its state: once
   * `snapshotEvery` events have passed since the last one (a new execution has none). Not
   * at start or at the end: replaying fewer than `snapshotEvery` events is cheaper than
   * writing a snapshot nobody may read.
   */
  snapshotDue(head: LockedHead | undefined, lastSeq: number): boolean {
    return lastSeq - (head?.state_seq ?? 0) >= this.snapshotEvery;
  }

  /**
   * Keeps the state a batch is writing, under the batch's id. Called before the batch
   * commits: if it never does, its id is never stored and the entry is never used.
   */
  remember(executionId: string, writtenBy: string, seq: number, state: ExecutionState): void {
    this.#cache.delete(executionId);
    // A finished execution is rarely decided again (a rerun reads it from its snapshot).
    if (TERMINAL_STATUSES.includes(state.status) || this.cacheSize === 0) return;
    this.#cache.set(executionId, { writtenBy, seq, state });
    while (this.#cache.size > this.cacheSize) {
      const oldest = this.#cache.keys().next();
      if (oldest.done === true) break;
      this.#cache.delete(oldest.value);
    }
  }

  /** States cached now. */
  get size(): number {
    return this.#cache.size;
  }
}

/** The state at last_seq: the snapshot with the events after it replayed. */
async function stateOf(db: Kysely<Database>, plans: PlanCache, snapshot: StateSnapshot): Promise<ExecutionState> {
  if (snapshot.events.length === 0 && snapshot.state !== null) return snapshot.state;
  const plan = await plans.get(db, snapshot.recipe_name, snapshot.recipe_version);
  const state = replay(snapshot.events, plan, snapshot.state ?? undefined);
  if (state === undefined) throw new ExecutionNotFoundError(`execution ${snapshot.id} has no state`);
  return state;
}

/**
 * Executions' current states without locking them (the API's reads): each the snapshot
 * with the events after it replayed, as of one moment. Executions that do not exist are
 * absent.
 */
export async function currentStates(
  db: Kysely<Database>,
  plans: PlanCache,
  executionIds: readonly string[],
): Promise<Map<string, ExecutionState>> {
  const snapshots = await selectStateSnapshots(db, executionIds);
  const out = new Map<string, ExecutionState>();
  for (const [id, snapshot] of snapshots) out.set(id, await stateOf(db, plans, snapshot));
  return out;
}
