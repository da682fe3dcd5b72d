import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/*
 * The retention purge's statements (migrations/0009_retention.sql). A purge batch runs
 * in one transaction: allowPurge, lockExpiredExecutionTrees, deleteExecutions.
 */

/** A recipe name and the `retention` of the plan of its latest registered version (null: none given). */
export interface RecipeRetentionRow {
  readonly recipeName: string;
  readonly retention: unknown;
}

/**
 * Every recipe name with the retention its latest version declares. The recipe table
 * holds one row per registered version, so this reads a few rows, through its key.
 */
export async function selectRecipeRetentions(trx: Kysely<Database>): Promise<RecipeRetentionRow[]> {
  const { rows } = await sql<{ name: string; retention: unknown }>`/* sous:selectRecipeRetentions */
    SELECT DISTINCT ON (name) name, plan -> 'retention' AS retention
    FROM sous.recipe ORDER BY name, version DESC`.execute(trx);
  return rows.map((r) => ({ recipeName: r.name, retention: r.retention ?? null }));
}

/**
 * Lets this transaction delete events (the append-only trigger checks the setting) and
 * bounds how long any of its statements waits for a lock: the rows it deletes are
 * finished, so a wait means a decision holds one, and the batch is better tried at the
 * next run than left waiting. Both settings end with the transaction.
 */
export async function allowPurge(trx: Kysely<Database>, lockTimeoutMs: number): Promise<void> {
  await sql`/* sous:allowPurge */
    SELECT set_config('sous.retention_purge', 'on', true), set_config('lock_timeout', ${`${lockTimeoutMs}ms`}, true)`.execute(
    trx,
  );
}

/** One execution of an expired tree: a root or one of its sub-recipe executions at any depth. */
export interface ExpiredExecutionRow {
  readonly rootId: string;
  readonly id: string;
  /** Events of the execution (its last seq): how much deleting it costs. */
  readonly events: number;
  readonly createdAt: Date;
  readonly finishedAt: Date;
}

const FINISHED = ['completed', 'failed', 'cancelled', 'timed_out'];

/**
 * Locks up to `limit` root executions of `recipeNames` that finished before
 * `finishedBefore`, with every execution below them (sub-recipes, at any depth), and
 * returns them all. In no particular order: every one found is due, and without an ORDER
 * BY the scan of the execution_retention index stops at the limit, where sorting would
 * read (and check) every expired root first: millions, when retention is first enabled. A root with a descendant not finished is left
 * out: its tree is purged once the whole of it has finished. The locks are the
 * executions' advisory locks (sous.execution_lock_key, 0021), which decisions take:
 * a root another transaction holds is skipped (a try-lock), so control planes purging at
 * once take different batches and never wait on a decision.
 */
export async function lockExpiredExecutionTrees(
  trx: Kysely<Database>,
  recipeNames: readonly string[],
  finishedBefore: Date,
  limit: number,
): Promise<ExpiredExecutionRow[]> {
  const { rows } = await sql<{
    root_id: string;
    id: string;
    last_seq: number;
    created_at: Date;
    finished_at: Date;
  }>`/* sous:lockExpiredExecutionTrees */
    WITH RECURSIVE roots AS (
      SELECT e.id, e.last_seq, e.created_at, e.finished_at
      FROM sous.execution AS e
      WHERE e.recipe_name = ANY(${[...recipeNames]}::text[])
        AND e.parent_execution_id IS NULL
        AND e.finished_at IS NOT NULL
        AND e.finished_at < ${finishedBefore}
        AND e.status = ANY(${FINISHED}::text[])
        -- Most roots have no sub-recipe: one probe of the execution_parent index says so,
        -- and the walk down the tree runs only for the roots that have one.
        AND (
          NOT EXISTS (SELECT FROM sous.execution AS c WHERE c.parent_execution_id = e.id)
          OR NOT EXISTS (
            WITH RECURSIVE below AS (
              SELECT c.id, c.status FROM sous.execution AS c WHERE c.parent_execution_id = e.id
              UNION ALL
              SELECT c.id, c.status FROM below AS b JOIN sous.execution AS c ON c.parent_execution_id = b.id
            )
            SELECT FROM below WHERE below.status <> ALL(${FINISHED}::text[])
          )
        )
        -- Last, so it is tried on a root the conditions above chose (a root it locks and
        -- then leaves out stays locked until the batch commits: harmless).
        AND pg_try_advisory_xact_lock(sous.execution_lock_key(e.id))
      LIMIT ${limit}
    ),
    below AS (
      SELECT r.id AS root_id, c.id FROM roots AS r JOIN sous.execution AS c ON c.parent_execution_id = r.id
      UNION ALL
      SELECT b.root_id, c.id FROM below AS b JOIN sous.execution AS c ON c.parent_execution_id = b.id
    ),
    -- The sub-recipe executions are locked too (they are finished: nothing else should
    -- hold them, so this waits at most for a stray decision, within the lock timeout).
    locked_below AS (
      SELECT b.root_id, e.id, e.last_seq, e.created_at, e.finished_at
      FROM below AS b JOIN sous.execution AS e ON e.id = b.id
      CROSS JOIN LATERAL (SELECT pg_advisory_xact_lock(sous.execution_lock_key(e.id))) AS locked
    )
    SELECT r.id AS root_id, r.id, r.last_seq, r.created_at, r.finished_at FROM roots AS r
    UNION ALL
    SELECT * FROM locked_below`.execute(trx);
  return rows.map((r) => ({
    rootId: r.root_id,
    id: r.id,
    events: r.last_seq,
    createdAt: r.created_at,
    // Checked finished for every row above; a descendant's finished_at is set with its status.
    finishedAt: r.finished_at,
  }));
}

/** Rows deleted by one purge batch, per table. */
export interface PurgedRows {
  readonly executions: number;
  readonly events: number;
  readonly steps: number;
  readonly attempts: number;
  readonly foreachItems: number;
  readonly payloads: number;
  readonly processedMessages: number;
}

/**
 * Deletes executions with every row of theirs, in one statement, so none is left behind
 * (events, steps and attempts have no foreign keys since 0020; the remaining ones, forEach
 * items and parent → child, are checked at its end, when all are gone). processed_message rows are found through their time, within
 * [`from`, `to`) (the batch's earliest start to its latest finish, with a margin): the
 * table is keyed by message id, and an index on its execution id would cost an entry
 * per reply on the hot path. Needs allowPurge first, in the same transaction.
 */
export async function deleteExecutions(
  trx: Kysely<Database>,
  ids: readonly string[],
  processedBetween: { readonly from: Date; readonly to: Date },
): Promise<PurgedRows> {
  const { rows } = await sql<{
    executions: string;
    events: string;
    steps: string;
    attempts: string;
    foreach_items: string;
    payloads: string;
    processed_messages: string;
  }>`/* sous:deleteExecutions */
    WITH
      -- The event log: rows from before 0023, and batches of events since.
      ev AS (DELETE FROM sous.execution_event_row WHERE execution_id = ANY(${[...ids]}::uuid[]) RETURNING 1),
      eb AS (
        DELETE FROM sous.execution_event_batch WHERE execution_id = ANY(${[...ids]}::uuid[])
        RETURNING last_seq - first_seq + 1 AS events
      ),
      at AS (DELETE FROM sous.superseded_attempt WHERE execution_id = ANY(${[...ids]}::uuid[]) RETURNING 1),
      -- A step row holds its current attempt (0022): counted as an attempt too.
      st AS (DELETE FROM sous.step WHERE execution_id = ANY(${[...ids]}::uuid[]) RETURNING attempt_id),
      fi AS (DELETE FROM sous.foreach_item WHERE execution_id = ANY(${[...ids]}::uuid[]) RETURNING 1),
      -- Run though not counted: a data-modifying WITH runs whether or not it is read.
      sn AS (DELETE FROM sous.execution_snapshot WHERE execution_id = ANY(${[...ids]}::uuid[]) RETURNING 1),
      pl AS (DELETE FROM sous_payload.payload WHERE execution_id = ANY(${[...ids]}::uuid[]) RETURNING 1),
      pm AS (
        DELETE FROM sous.processed_message
        WHERE processed_at >= ${processedBetween.from} AND processed_at < ${processedBetween.to}
          AND execution_id = ANY(${[...ids]}::uuid[])
        RETURNING 1
      ),
      ex AS (DELETE FROM sous.execution WHERE id = ANY(${[...ids]}::uuid[]) RETURNING 1)
    SELECT
      (SELECT count(*) FROM ex) AS executions,
      (SELECT count(*) FROM ev) + (SELECT coalesce(sum(events), 0) FROM eb) AS events,
      (SELECT count(*) FROM st) AS steps,
      (SELECT count(*) FROM at) + (SELECT count(attempt_id) FROM st) AS attempts,
      (SELECT count(*) FROM fi) AS foreach_items,
      (SELECT count(*) FROM pl) AS payloads,
      (SELECT count(*) FROM pm) AS processed_messages`.execute(trx);
  const row = rows[0];
  const n = (value: string | undefined) => Number(value ?? 0);
  return {
    executions: n(row?.executions),
    events: n(row?.events),
    steps: n(row?.steps),
    attempts: n(row?.attempts),
    foreachItems: n(row?.foreach_items),
    payloads: n(row?.payloads),
    processedMessages: n(row?.processed_messages),
  };
}
