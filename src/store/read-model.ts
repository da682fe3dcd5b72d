import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { eventJson, LAST_SEQ } from './events.js';

/*
 * The API's read queries, one statement per list, shaped as the API shows them (column
 * aliases are the GraphQL field names). The API validates arguments and gives the row
 * types; these only read.
 */

const EXECUTION_COLUMNS = sql`id, recipe_name AS recipe, recipe_version AS version, upper(status) AS status, input, output,
  error, idempotency_key AS "idempotencyKey", parent_execution_id AS "parentExecutionId", created_at AS "createdAt",
  updated_at AS "updatedAt", finished_at AS "finishedAt"`;

/** Executions by id. */
export async function selectExecutionNodes<Row>(db: Kysely<Database>, ids: readonly string[]): Promise<Row[]> {
  const { rows } = await sql<Row>`
    SELECT ${EXECUTION_COLUMNS} FROM sous.execution
    WHERE id = ANY(${[...ids]}::uuid[])`.execute(db);
  return rows;
}

/** What a page of executions is filtered by (null: any). */
export interface ExecutionPageQuery {
  readonly statuses: readonly string[] | null;
  readonly recipe: string | null;
  readonly version: number | null;
  readonly createdAfter: string | null;
  readonly createdBefore: string | null;
  readonly idempotencyKey: string | null;
  /** Executions with an attempt in this region. */
  readonly region: string | null;
  /** Keyset: rows strictly before (createdAt, id), newest first. */
  readonly cursor: { readonly createdAt: string; readonly id: string } | null;
  readonly limit: number;
}

/** A page of executions, newest first, with keyset pagination on (created_at, id). */
export async function selectExecutionPage<Row>(db: Kysely<Database>, p: ExecutionPageQuery): Promise<Row[]> {
  const { rows } = await sql<Row>`
    SELECT ${EXECUTION_COLUMNS} FROM sous.execution e
    WHERE (${p.statuses === null ? null : [...p.statuses]}::text[] IS NULL OR e.status = ANY(${p.statuses === null ? null : [...p.statuses]}::text[]))
      AND (${p.recipe}::text IS NULL OR e.recipe_name = ${p.recipe})
      AND (${p.version}::int IS NULL OR e.recipe_version = ${p.version})
      AND (${p.createdAfter}::timestamptz IS NULL OR e.created_at >= ${p.createdAfter}::timestamptz)
      AND (${p.createdBefore}::timestamptz IS NULL OR e.created_at < ${p.createdBefore}::timestamptz)
      AND (${p.idempotencyKey}::text IS NULL OR e.idempotency_key = ${p.idempotencyKey})
      AND (${p.region}::text IS NULL OR EXISTS (
        SELECT 1 FROM sous.step_attempt a WHERE a.execution_id = e.id AND a.region = ${p.region}))
      AND (${p.cursor?.createdAt ?? null}::timestamptz IS NULL
        OR (e.created_at, e.id) < (${p.cursor?.createdAt ?? null}::timestamptz, ${p.cursor?.id ?? null}::uuid))
    ORDER BY e.created_at DESC, e.id DESC
    LIMIT ${p.limit}`.execute(db);
  return rows;
}

/** Step rows of these executions, in the order they were created. */
export async function selectStepNodes<Row>(db: Kysely<Database>, executionIds: readonly string[]): Promise<Row[]> {
  const { rows } = await sql<Row>`
    SELECT execution_id AS "executionId", step_key AS key, step_id AS "stepId", item_index AS "itemIndex", compensation,
      kind, status, attempts AS "attemptCount", output, error, child_execution_id AS "childExecutionId",
      created_at AS "createdAt", updated_at AS "updatedAt", finished_at AS "finishedAt"
    FROM sous.step WHERE execution_id = ANY(${[...executionIds]}::uuid[])
    ORDER BY created_at, step_key`.execute(db);
  return rows;
}

/**
 * Attempt rows of these executions, oldest first, each with its input from its
 * StepScheduled event (rows written by earlier releases carry it themselves).
 */
export async function selectAttemptNodes<Row>(db: Kysely<Database>, executionIds: readonly string[]): Promise<Row[]> {
  const ids = [...executionIds];
  const { rows } = await sql<Row>`
    SELECT a.id, a.execution_id AS "executionId", a.step_key AS "stepKey", a.attempt, a.capability,
      coalesce(a.input, s.input) AS input, a.region, a.status, a.worker_id AS "workerId", a.error,
      a.scheduled_at AS "scheduledAt", a.started_at AS "startedAt", a.finished_at AS "finishedAt",
      a.last_heartbeat_at AS "lastHeartbeatAt"
    FROM sous.step_attempt a
    LEFT JOIN (
      SELECT x.id AS execution_id, ev.data->>'stepExecutionId' AS attempt_id, (ev.data->'input')::jsonb AS input
      FROM unnest(${ids}::uuid[]) AS x(id) CROSS JOIN LATERAL sous.execution_events(x.id, 0, ${LAST_SEQ}) ev
      WHERE ev.type = 'StepScheduled'
    ) s ON s.execution_id = a.execution_id AND s.attempt_id = a.id::text
    WHERE a.execution_id = ANY(${ids}::uuid[])
    ORDER BY a.scheduled_at, a.attempt`.execute(db);
  return rows;
}

/** Events of these executions after a sequence number, in log order. */
export async function selectEventNodes<Row>(
  db: Kysely<Database>,
  executionIds: readonly string[],
  afterSeq: number,
): Promise<Row[]> {
  const { rows } = await sql<Row>`
    SELECT x.id AS "executionId", e.seq, e.type,
      -- The event's own time: an event of a batch (0023) keeps its own when it is not the batch's.
      coalesce((e.data->>'at')::timestamptz, e.created_at) AS at, ${eventJson('e')} AS data
    FROM unnest(${[...executionIds]}::uuid[]) AS x(id)
    CROSS JOIN LATERAL sous.execution_events(x.id, ${afterSeq}, ${LAST_SEQ}) e
    ORDER BY x.id, e.seq`.execute(db);
  return rows;
}

/**
 * The handler failures each execution's last event records (its final event once it has
 * finished: nothing is appended after it but a rerun), one index probe per execution.
 */
export async function selectHandlerFailures(
  db: Kysely<Database>,
  executionIds: readonly string[],
): Promise<Map<string, unknown>> {
  const { rows } = await sql<{ id: string; failures: unknown }>`
    SELECT x.id, last.data->'handlerFailures' AS failures
    FROM sous.execution x
    CROSS JOIN LATERAL sous.execution_events(x.id, x.last_seq - 1, x.last_seq) AS last
    WHERE x.id = ANY(${[...executionIds]}::uuid[])`.execute(db);
  return new Map(rows.map((r) => [r.id, r.failures]));
}

/** Recipe names (one, or all) with their newest version. */
export async function selectRecipeNames(
  db: Kysely<Database>,
  name: string | null,
): Promise<{ name: string; latestVersion: number }[]> {
  const { rows } = await sql<{ name: string; latestVersion: number }>`
    SELECT name, max(version) AS "latestVersion" FROM sous.recipe
    WHERE ${name}::text IS NULL OR name = ${name}
    GROUP BY name ORDER BY name`.execute(db);
  return rows;
}

/** Every version of these recipes. */
export async function selectRecipeVersions<Row>(db: Kysely<Database>, names: readonly string[]): Promise<Row[]> {
  const { rows } = await sql<Row>`
    SELECT name, version, checksum, plan, source, created_at AS "createdAt"
    FROM sous.recipe WHERE name = ANY(${[...names]}::text[]) ORDER BY name, version`.execute(db);
  return rows;
}

/** Dead letters of one status, newest first, filtered (null: any). */
export async function selectDeadLetterPage(
  db: Kysely<Database>,
  q: {
    readonly status: string;
    readonly capability: string | null;
    readonly errorCode: string | null;
    readonly originalTopic: string | null;
    readonly executionId: string | null;
    readonly ingestedAfter: string | null;
    readonly ingestedBefore: string | null;
    readonly limit: number;
  },
): Promise<Record<string, unknown>[]> {
  const { rows } = await sql<Record<string, unknown>>`
    SELECT id, upper(status) AS status, dlt_topic AS "dltTopic", dlt_partition AS "dltPartition",
      dlt_offset::text AS "dltOffset", original_topic AS "originalTopic", original_partition AS "originalPartition",
      original_offset::text AS "originalOffset", message_key AS key, headers, payload, payload_text AS "payloadText",
      error_class AS "errorClass", error_code AS "errorCode", error_message AS "errorMessage",
      error_stack AS "errorStack", consumer_group AS "consumerGroup", attempts, failed_at AS "failedAt", capability,
      execution_id AS "executionId", step_key AS "stepKey", idempotency_key AS "idempotencyKey",
      ingested_at AS "ingestedAt", resolved_at AS "resolvedAt", resolved_by AS "resolvedBy",
      reprocess_count AS "reprocessCount", outcome
    FROM sous.dead_letter
    WHERE status = ${q.status}
      AND (${q.capability}::text IS NULL OR capability = ${q.capability})
      AND (${q.errorCode}::text IS NULL OR error_code = ${q.errorCode})
      AND (${q.originalTopic}::text IS NULL OR original_topic = ${q.originalTopic})
      AND (${q.executionId}::uuid IS NULL OR execution_id = ${q.executionId}::uuid)
      AND (${q.ingestedAfter}::timestamptz IS NULL OR ingested_at >= ${q.ingestedAfter}::timestamptz)
      AND (${q.ingestedBefore}::timestamptz IS NULL OR ingested_at < ${q.ingestedBefore}::timestamptz)
    ORDER BY ingested_at DESC, dlt_offset DESC
    LIMIT ${q.limit}`.execute(db);
  return rows;
}
