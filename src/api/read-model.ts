import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { ForEachState } from '../engine/state.js';
import type { ExecutionView } from '../control-plane/queries.js';
import { InvalidArgumentError } from './errors.js';
import { isUuid } from '../uuid.js';

/*
 * What the API reads, one query per list: resolvers call these through loaders, so a
 * page of executions with their steps and attempts costs a fixed number of queries.
 */

/** An execution as the API shows it: the control plane's view without steps, status in upper case. */
export type ExecutionNode = Omit<ExecutionView, 'steps' | 'status'> & { readonly status: string };

const EXECUTION_COLUMNS = sql`id, recipe_name AS recipe, recipe_version AS version, upper(status) AS status, input, output,
  error, idempotency_key AS "idempotencyKey", parent_execution_id AS "parentExecutionId", created_at AS "createdAt",
  updated_at AS "updatedAt", finished_at AS "finishedAt"`;

export async function executionsById(
  db: Kysely<Database>,
  ids: readonly string[],
): Promise<Map<string, ExecutionNode>> {
  const valid = ids.filter(isUuid);
  if (valid.length === 0) return new Map();
  const { rows } = await sql<ExecutionNode>`
    SELECT ${EXECUTION_COLUMNS} FROM sous.execution
    WHERE id = ANY(${valid}::uuid[])`.execute(db);
  return new Map(rows.map((r) => [r.id, r]));
}

export interface ExecutionFilter {
  readonly status?: readonly string[] | null;
  readonly recipe?: string | null;
  readonly version?: number | null;
  readonly createdAfter?: string | null;
  readonly createdBefore?: string | null;
  readonly region?: string | null;
  readonly idempotencyKey?: string | null;
}

interface Cursor {
  readonly createdAt: string;
  readonly id: string;
}

function encodeCursor(node: ExecutionNode): string {
  return Buffer.from(JSON.stringify({ createdAt: node.createdAt.toISOString(), id: node.id })).toString('base64url');
}

function decodeCursor(cursor: string): Cursor {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Partial<Cursor>;
    if (typeof value.createdAt === 'string' && typeof value.id === 'string' && isUuid(value.id)) {
      if (!Number.isNaN(Date.parse(value.createdAt))) return { createdAt: value.createdAt, id: value.id };
    }
  } catch {
    // Falls through to the error below.
  }
  throw new InvalidArgumentError(`after: "${cursor}" is not a cursor this API gave out`);
}

function timestamp(name: string, value: string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (Number.isNaN(Date.parse(value)))
    throw new InvalidArgumentError(`filter.${name}: "${value}" is not an ISO-8601 time`);
  return value;
}

export const MAX_PAGE = 500;

/** A page of executions, newest first, with keyset pagination on (created_at, id). */
export async function listExecutions(
  db: Kysely<Database>,
  filter: ExecutionFilter,
  first: number,
  after: string | null | undefined,
): Promise<{ nodes: { cursor: string; node: ExecutionNode }[]; hasNextPage: boolean }> {
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) {
    throw new InvalidArgumentError(`first must be between 1 and ${MAX_PAGE}, got ${first}`);
  }
  const cursor = after === null || after === undefined ? null : decodeCursor(after);
  const statuses = filter.status?.map((s) => s.toLowerCase()) ?? null;
  const createdAfter = timestamp('createdAfter', filter.createdAfter);
  const createdBefore = timestamp('createdBefore', filter.createdBefore);
  const { rows } = await sql<ExecutionNode>`
    SELECT ${EXECUTION_COLUMNS} FROM sous.execution e
    WHERE (${statuses}::text[] IS NULL OR e.status = ANY(${statuses}::text[]))
      AND (${filter.recipe ?? null}::text IS NULL OR e.recipe_name = ${filter.recipe ?? null})
      AND (${filter.version ?? null}::int IS NULL OR e.recipe_version = ${filter.version ?? null})
      AND (${createdAfter}::timestamptz IS NULL OR e.created_at >= ${createdAfter}::timestamptz)
      AND (${createdBefore}::timestamptz IS NULL OR e.created_at < ${createdBefore}::timestamptz)
      AND (${filter.idempotencyKey ?? null}::text IS NULL OR e.idempotency_key = ${filter.idempotencyKey ?? null})
      AND (${filter.region ?? null}::text IS NULL OR EXISTS (
        SELECT 1 FROM sous.step_attempt a WHERE a.execution_id = e.id AND a.region = ${filter.region ?? null}))
      AND (${cursor?.createdAt ?? null}::timestamptz IS NULL
        OR (e.created_at, e.id) < (${cursor?.createdAt ?? null}::timestamptz, ${cursor?.id ?? null}::uuid))
    ORDER BY e.created_at DESC, e.id DESC
    LIMIT ${first + 1}`.execute(db);
  const page = rows.slice(0, first);
  return { nodes: page.map((node) => ({ cursor: encodeCursor(node), node })), hasNextPage: rows.length > first };
}

export interface StepNode {
  readonly executionId: string;
  readonly key: string;
  readonly stepId: string;
  readonly itemIndex: number | null;
  readonly compensation: boolean;
  readonly kind: string;
  readonly status: string;
  readonly attemptCount: number;
  readonly output: unknown;
  readonly error: unknown;
  readonly childExecutionId: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly finishedAt: Date | null;
}

export async function stepsOf(db: Kysely<Database>, executionIds: readonly string[]): Promise<StepNode[]> {
  if (executionIds.length === 0) return [];
  const { rows } = await sql<StepNode>`
    SELECT execution_id AS "executionId", step_key AS key, step_id AS "stepId", item_index AS "itemIndex", compensation,
      kind, status, attempts AS "attemptCount", output, error, child_execution_id AS "childExecutionId",
      created_at AS "createdAt", updated_at AS "updatedAt", finished_at AS "finishedAt"
    FROM sous.step WHERE execution_id = ANY(${executionIds}::uuid[])
    ORDER BY created_at, step_key`.execute(db);
  return rows;
}

export interface AttemptNode {
  readonly id: string;
  readonly executionId: string;
  readonly stepKey: string;
  readonly attempt: number;
  readonly capability: string;
  readonly input: unknown;
  readonly region: string | null;
  readonly status: string;
  readonly workerId: string | null;
  readonly error: unknown;
  readonly scheduledAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  readonly lastHeartbeatAt: Date | null;
}

export async function attemptsOf(db: Kysely<Database>, executionIds: readonly string[]): Promise<AttemptNode[]> {
  if (executionIds.length === 0) return [];
  const { rows } = await sql<AttemptNode>`
    SELECT id, execution_id AS "executionId", step_key AS "stepKey", attempt, capability, input, region, status,
      worker_id AS "workerId", error, scheduled_at AS "scheduledAt", started_at AS "startedAt",
      finished_at AS "finishedAt", last_heartbeat_at AS "lastHeartbeatAt"
    FROM sous.step_attempt WHERE execution_id = ANY(${executionIds}::uuid[])
    ORDER BY scheduled_at, attempt`.execute(db);
  return rows;
}

export interface EventNode {
  readonly executionId: string;
  readonly seq: number;
  readonly type: string;
  readonly at: Date;
  readonly data: unknown;
}

export async function eventsOf(
  db: Kysely<Database>,
  executionIds: readonly string[],
  afterSeq: number,
): Promise<EventNode[]> {
  if (executionIds.length === 0) return [];
  const { rows } = await sql<EventNode>`
    SELECT execution_id AS "executionId", seq, type, created_at AS at, data
    FROM sous.execution_event WHERE execution_id = ANY(${executionIds}::uuid[]) AND seq > ${afterSeq}
    ORDER BY execution_id, seq`.execute(db);
  return rows;
}

export interface BucketNode {
  readonly stepKey: string;
  readonly items: number;
  readonly done: number;
  readonly notStarted: number;
  readonly ready: Readonly<Record<string, readonly number[]>>;
  readonly inFlight: Readonly<Record<string, number>>;
  readonly failed: string | null;
}

export async function bucketsOf(
  db: Kysely<Database>,
  executionIds: readonly string[],
): Promise<Map<string, BucketNode[]>> {
  if (executionIds.length === 0) return new Map();
  const { rows } = await sql<{ id: string; fe: Record<string, ForEachState> | null }>`
    SELECT id, state->'forEach' AS fe FROM sous.execution WHERE id = ANY(${executionIds}::uuid[])`.execute(db);
  return new Map(
    rows.map((r) => [
      r.id,
      Object.entries(r.fe ?? {}).map(([stepKey, fe]) => ({
        stepKey,
        items: fe.count,
        done: fe.done,
        notStarted: fe.count - fe.entered,
        ready: fe.ready,
        inFlight: fe.inFlight,
        failed: fe.failed ?? null,
      })),
    ]),
  );
}

export interface RecipeVersionNode {
  readonly name: string;
  readonly version: number;
  readonly checksum: string;
  readonly plan: unknown;
  readonly source: string | null;
  readonly createdAt: Date;
}

export async function recipeNames(
  db: Kysely<Database>,
  name?: string,
): Promise<{ name: string; latestVersion: number }[]> {
  const { rows } = await sql<{ name: string; latestVersion: number }>`
    SELECT name, max(version) AS "latestVersion" FROM sous.recipe
    WHERE ${name ?? null}::text IS NULL OR name = ${name ?? null}
    GROUP BY name ORDER BY name`.execute(db);
  return rows;
}

export async function recipeVersions(db: Kysely<Database>, names: readonly string[]): Promise<RecipeVersionNode[]> {
  if (names.length === 0) return [];
  const { rows } = await sql<RecipeVersionNode>`
    SELECT name, version, checksum, plan, source, created_at AS "createdAt"
    FROM sous.recipe WHERE name = ANY(${names}::text[]) ORDER BY name, version`.execute(db);
  return rows;
}

export interface DeadLetterFilter {
  readonly status?: string | null;
  readonly capability?: string | null;
  readonly errorCode?: string | null;
  readonly originalTopic?: string | null;
  readonly executionId?: string | null;
}

export async function listDeadLetters(
  db: Kysely<Database>,
  filter: DeadLetterFilter,
  first: number,
): Promise<Record<string, unknown>[]> {
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) {
    throw new InvalidArgumentError(`first must be between 1 and ${MAX_PAGE}, got ${first}`);
  }
  if (filter.executionId != null && !isUuid(filter.executionId)) {
    throw new InvalidArgumentError(`filter.executionId: "${filter.executionId}" is not an execution id (a UUID)`);
  }
  const status = (filter.status ?? 'PENDING').toLowerCase();
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
    WHERE status = ${status}
      AND (${filter.capability ?? null}::text IS NULL OR capability = ${filter.capability ?? null})
      AND (${filter.errorCode ?? null}::text IS NULL OR error_code = ${filter.errorCode ?? null})
      AND (${filter.originalTopic ?? null}::text IS NULL OR original_topic = ${filter.originalTopic ?? null})
      AND (${filter.executionId ?? null}::uuid IS NULL OR execution_id = ${filter.executionId ?? null}::uuid)
    ORDER BY ingested_at DESC, dlt_offset DESC
    LIMIT ${first}`.execute(db);
  return rows;
}
