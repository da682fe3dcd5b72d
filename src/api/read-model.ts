import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { currentStates } from '../control-plane/execution-states.js';
import type { PlanCache } from '../control-plane/plan-cache.js';
import type { ExecutionView } from '../control-plane/queries.js';
import {
  selectAttemptNodes,
  selectDeadLetterPage,
  selectEventNodes,
  selectExecutionNodes,
  selectExecutionPage,
  selectHandlerFailures,
  selectRecipeNames,
  selectRecipeVersions,
  selectStepNodes,
} from '../store/read-model.js';
import { InvalidArgumentError } from './errors.js';
import { connection, decodeCursor, encodeCursor, isoTime, pageSize } from './paging.js';
import { isUuid } from '../uuid.js';

/*
 * What the API reads, one query per list: resolvers call these through loaders, so a
 * page of executions with their steps and attempts costs a fixed number of queries.
 */

/** An execution as the API shows it: the control plane's view without steps, status in upper case. */
export type ExecutionNode = Omit<ExecutionView, 'steps' | 'status'> & { readonly status: string };

export async function executionsById(
  db: Kysely<Database>,
  ids: readonly string[],
): Promise<Map<string, ExecutionNode>> {
  const valid = ids.filter(isUuid);
  if (valid.length === 0) return new Map();
  const rows = await selectExecutionNodes<ExecutionNode>(db, valid);
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

/** The sort key of an execution page: (created_at, id), newest first. */
function executionCursor(node: ExecutionNode): string {
  return encodeCursor({ createdAt: node.createdAt.toISOString(), id: node.id });
}

function readExecutionCursor(value: Record<string, unknown>): { createdAt: string; id: string } | undefined {
  const { createdAt, id } = value;
  if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt))) return undefined;
  return typeof id === 'string' && isUuid(id) ? { createdAt, id } : undefined;
}

/** A page of executions, newest first, with keyset pagination on (created_at, id). */
export async function listExecutions(
  db: Kysely<Database>,
  filter: ExecutionFilter,
  first: number,
  after: string | null | undefined,
): Promise<ReturnType<typeof connection<ExecutionNode>>> {
  pageSize(first);
  const cursor = after === null || after === undefined ? null : decodeCursor(after, readExecutionCursor);
  const statuses = filter.status?.map((s) => s.toLowerCase()) ?? null;
  const rows = await selectExecutionPage<ExecutionNode>(db, {
    statuses,
    recipe: filter.recipe ?? null,
    version: filter.version ?? null,
    createdAfter: isoTime('filter.createdAfter', filter.createdAfter),
    createdBefore: isoTime('filter.createdBefore', filter.createdBefore),
    idempotencyKey: filter.idempotencyKey ?? null,
    region: filter.region ?? null,
    cursor,
    limit: first + 1,
  });
  return connection(rows, first, executionCursor);
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
  return selectStepNodes<StepNode>(db, executionIds);
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
  return selectAttemptNodes<AttemptNode>(db, executionIds);
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
  return selectEventNodes<EventNode>(db, executionIds, afterSeq);
}

export interface HandlerFailureNode {
  readonly stepKey: string;
  readonly error: unknown;
}

/** Per execution, its onFailure and finally steps that failed for good (none while it runs). */
export async function handlerFailuresOf(
  db: Kysely<Database>,
  executionIds: readonly string[],
): Promise<Map<string, HandlerFailureNode[]>> {
  if (executionIds.length === 0) return new Map();
  const found = await selectHandlerFailures(db, executionIds);
  return new Map(
    [...found].map(([id, failures]) => [id, Array.isArray(failures) ? (failures as HandlerFailureNode[]) : []]),
  );
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

/** Each forEach's buckets as the execution stands now (its snapshot with the events after it). */
export async function bucketsOf(
  db: Kysely<Database>,
  plans: PlanCache,
  executionIds: readonly string[],
): Promise<Map<string, BucketNode[]>> {
  if (executionIds.length === 0) return new Map();
  const states = await currentStates(db, plans, executionIds);
  return new Map(
    [...states].map(([id, state]) => [
      id,
      Object.entries(state.forEach).map(([stepKey, fe]) => ({
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
  return selectRecipeNames(db, name ?? null);
}

export async function recipeVersions(db: Kysely<Database>, names: readonly string[]): Promise<RecipeVersionNode[]> {
  if (names.length === 0) return [];
  return selectRecipeVersions<RecipeVersionNode>(db, names);
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
  ingested: { readonly after?: string | undefined; readonly before?: string | undefined } = {},
): Promise<Record<string, unknown>[]> {
  pageSize(first);
  if (filter.executionId != null && !isUuid(filter.executionId)) {
    throw new InvalidArgumentError(`filter.executionId: "${filter.executionId}" is not an execution id (a UUID)`);
  }
  const status = (filter.status ?? 'PENDING').toLowerCase();
  return selectDeadLetterPage(db, {
    status,
    capability: filter.capability ?? null,
    errorCode: filter.errorCode ?? null,
    originalTopic: filter.originalTopic ?? null,
    executionId: filter.executionId ?? null,
    ingestedAfter: ingested.after ?? null,
    ingestedBefore: ingested.before ?? null,
    limit: first,
  });
}
