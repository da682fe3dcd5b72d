import { context as otelContext, SpanKind, trace, type Span } from '@opentelemetry/api';
import { newId } from '../uuid.js';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { TERMINAL_STATUSES, type ExecutionStatus } from '../engine/state.js';
import type { Trigger } from '../engine/triggers.js';
import type { RecipePlan } from '../recipe/plan.js';
import { ExecutionFinishedError, ExecutionNotFoundError, InvalidStartError } from './errors.js';
import { auditedTransaction, type AuditHook } from '../store/audit.js';
import { lockIdempotencyKey } from '../store/executions.js';
import { ATTR } from '../observability/span-attributes.js';
import { contextFromTraceparent, traceparentOf } from '../observability/trace-context.js';
import { endSpan, tracer } from '../observability/tracing.js';
import { latestVersion, subRecipeVersions } from './recipes.js';
import { parseDuration, type Duration } from '../recipe/duration.js';
import { runDecision, runDecisions, type DecisionEnvironment, type DecisionRequest } from './run-decision.js';

export interface StartOptions {
  readonly recipe: string;
  /** @default the latest registered version */
  readonly version?: number;
  readonly input?: unknown;
  /** Starting twice with the same key returns the first execution. */
  readonly idempotencyKey?: string;
  /**
   * W3C trace context of the caller, for a caller that does not use OpenTelemetry in
   * process. @default the span active in the caller (a new trace when there is none)
   */
  readonly traceparent?: string;
  /**
   * This execution's deadline, from its start (e.g. `2h`), instead of its recipe's: then
   * its steps in flight are cancelled, its compensations run and it ends `timed_out`.
   * @default the recipe's `deadline` (none when it has none)
   */
  readonly deadline?: Duration;
}

/** A start's deadline in milliseconds; InvalidStartError when it is not a positive duration. */
function deadlineMsOf(start: StartOptions): number | undefined {
  if (start.deadline === undefined) return undefined;
  const ms = parseDuration(start.deadline);
  if (ms === undefined || ms <= 0) {
    throw new InvalidStartError(
      `deadline ${JSON.stringify(start.deadline)} of a start of ${start.recipe} must be a positive duration (e.g. 30s, 2h)`,
    );
  }
  return ms;
}

export interface Started {
  readonly executionId: string;
  /** False when the idempotency key named an existing execution. */
  readonly created: boolean;
  readonly status: ExecutionStatus;
}

/**
 * Starts an execution; its first commands commit to the outbox with it. The `start`
 * span (a child of the caller's span) is the execution's trace context: stored with it,
 * the parent of its decisions that no message carries (timers, operator requests).
 */
export async function startExecution(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  options: StartOptions,
  audit?: AuditHook,
): Promise<Started> {
  const [started] = await startExecutions(db, env, [options], audit);
  if (started === undefined) throw new Error('startExecutions gave no result for one start');
  return started;
}

/** The most executions one `startExecutions` call starts (they share one transaction). */
export const MAX_STARTS_PER_CALL = 10_000;

/**
 * Starts several executions in one transaction (`startExecution` is a list of one), with
 * one commit and a fixed number of statements for all of them (a client starting a batch
 * of work, as job queues enqueue in bulk). All or none are started. Results are in the
 * order of `starts`; an idempotency key already used, or used twice in the list, gives the
 * first execution (`created: false`). Each execution gets a `start` span of its own.
 * Given a transaction, the starts are part of it (they commit or roll back with it), as a
 * schedule records its fire with them; `audit` writes the caller's audit row in it.
 */
export async function startExecutions(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  starts: readonly StartOptions[],
  audit?: AuditHook,
): Promise<Started[]> {
  if (starts.length > MAX_STARTS_PER_CALL) {
    throw new InvalidStartError(
      `startExecutions takes at most ${MAX_STARTS_PER_CALL} executions a call, got ${starts.length}: split the list`,
    );
  }
  if (starts.length === 0) return [];
  // Versions and plans first: RecipeNotFoundError before any write.
  const latest = new Map<string, number>();
  const pins = new Map<RecipePlan, Readonly<Record<string, number>> | undefined>();
  const versions: {
    start: StartOptions;
    version: number;
    pinned: Readonly<Record<string, number>> | undefined;
  }[] = [];
  const deadlines = starts.map(deadlineMsOf);
  for (const start of starts) {
    let version = start.version ?? latest.get(start.recipe);
    if (version === undefined) {
      version = await latestVersion(db, start.recipe);
      latest.set(start.recipe, version);
    }
    const plan = await env.plans.get(db, start.recipe, version);
    if (!pins.has(plan)) pins.set(plan, await subRecipeVersions(db, plan));
    versions.push({ start, version, pinned: pins.get(plan) });
  }
  const spans: Span[] = [];
  const resolved = versions.map(({ start, version, pinned }) => {
    const caller =
      (start.traceparent === undefined ? undefined : contextFromTraceparent(start.traceparent)) ?? otelContext.active();
    const span = tracer().startSpan(
      `start ${start.recipe}`,
      { kind: SpanKind.INTERNAL, attributes: { [ATTR.recipeName]: start.recipe, [ATTR.recipeVersion]: version } },
      caller,
    );
    spans.push(span);
    return { start, version, pinned, context: trace.setSpan(caller, span) };
  });
  // One start runs with its span active, as any work inside a span does; a list has none of its own.
  const active = resolved.length === 1 && resolved[0] !== undefined ? resolved[0].context : otelContext.active();
  try {
    const started = await otelContext.with(active, () =>
      auditedTransaction(db, audit, async (trx): Promise<Started[]> => {
        const out: (Started | undefined)[] = starts.map(() => undefined);
        // Keys locked in one order, so two batches sharing keys queue instead of deadlocking.
        const keys = [
          ...new Set(starts.flatMap((s) => (s.idempotencyKey === undefined ? [] : [s.idempotencyKey]))),
        ].sort();
        const byKey = new Map<string, Started>();
        for (const key of keys) {
          const existing = await lockIdempotencyKey(trx, key);
          if (existing !== undefined)
            byKey.set(key, { executionId: existing.id, created: false, status: existing.status });
        }
        const requests: DecisionRequest[] = [];
        for (const [i, { start, version, pinned, context }] of resolved.entries()) {
          const key = start.idempotencyKey;
          const known = key === undefined ? undefined : byKey.get(key);
          if (known !== undefined) {
            out[i] = { ...known, created: false };
            continue;
          }
          const executionId = newId();
          out[i] = { executionId, created: true, status: 'running' };
          if (key !== undefined) byKey.set(key, { executionId, created: true, status: 'running' });
          const traceparent = traceparentOf(context);
          requests.push({
            executionId,
            triggers: [
              {
                kind: 'start',
                executionId,
                recipe: start.recipe,
                version,
                input: start.input ?? {},
                ...(key === undefined ? {} : { idempotencyKey: key }),
                ...(pinned === undefined ? {} : { subRecipeVersions: pinned }),
                ...(deadlines[i] === undefined ? {} : { deadlineMs: deadlines[i] }),
              },
            ],
            parents: [context],
            ...(traceparent === undefined ? {} : { traceparent }),
          });
        }
        const { decisions } = await runDecisions(trx, env, new Map(), requests);
        return out.map((result, i) => {
          if (result === undefined) throw new Error(`start ${i} has no result`);
          const status = result.created ? decisions.get(result.executionId)?.state?.status : undefined;
          return status === undefined ? result : { ...result, status };
        });
      }),
    );
    for (const [i, span] of spans.entries()) {
      const result = started[i];
      if (result !== undefined) {
        span.setAttributes({ [ATTR.executionId]: result.executionId, 'sous.execution.created': result.created });
      }
      endSpan(span);
    }
    return started;
  } catch (error) {
    for (const span of spans) endSpan(span, error);
    throw error;
  }
}

/** Applies an operator's or application's request to a running execution (with its audit row, if any). */
async function request(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  executionId: string,
  trigger: Trigger,
  action: string,
  { finishedToo = false, audit }: { finishedToo?: boolean; audit?: AuditHook | undefined } = {},
): Promise<ExecutionStatus> {
  return auditedTransaction(db, audit, async (trx) => {
    const locked = (await env.states.lock(trx, env.plans, [executionId.toLowerCase()])).get(executionId.toLowerCase());
    if (locked === undefined) throw new ExecutionNotFoundError(`no execution ${executionId}`);
    const status = locked.status;
    if (TERMINAL_STATUSES.includes(status) && !finishedToo) {
      throw new ExecutionFinishedError(`cannot ${action} execution ${executionId}: it is already ${status}`);
    }
    const decision = await runDecision(trx, env, executionId, trigger, { locked });
    return decision.state?.status ?? status;
  });
}

/** Stops an execution: nothing more is dispatched and late replies are ignored. */
export function cancelExecution(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  executionId: string,
  reason?: string,
  audit?: AuditHook,
) {
  const trigger: Trigger = { kind: 'cancel', ...(reason === undefined ? {} : { reason }) };
  return request(db, env, executionId, trigger, 'cancel', { audit });
}

/** Dispatches nothing new until resumed; steps in flight finish. */
export function pauseExecution(db: Kysely<Database>, env: DecisionEnvironment, executionId: string, audit?: AuditHook) {
  return request(db, env, executionId, { kind: 'pause' }, 'pause', { audit });
}

export function resumeExecution(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  executionId: string,
  audit?: AuditHook,
) {
  return request(db, env, executionId, { kind: 'resume' }, 'resume', { audit });
}

/** Delivers a named signal; a waitForSignal step takes it now or when it begins. */
export function signalExecution(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  executionId: string,
  name: string,
  payload: unknown,
  audit?: AuditHook,
) {
  return request(db, env, executionId, { kind: 'signal', name, payload: payload ?? null }, 'signal', { audit });
}

/** Operator: a new attempt of a task step now, abandoning one in flight or waiting (dead-lettered, back-off). */
export function retryStep(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  executionId: string,
  stepKey: string,
  audit?: AuditHook,
) {
  return request(db, env, executionId, { kind: 'retryStep', stepKey }, 'retry a step of', { audit });
}

/** Operator: the step counts as completed with `output`; later steps see that output. */
export function skipStep(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  executionId: string,
  stepKey: string,
  output: unknown,
  audit?: AuditHook,
) {
  const trigger: Trigger = { kind: 'skipStep', stepKey, output: output ?? null };
  return request(db, env, executionId, trigger, 'skip a step of', { audit });
}

/**
 * Operator: forgets a top-level step and everything after it and runs again from there;
 * also revives a failed, cancelled or completed execution.
 */
export function rerunFromStep(
  db: Kysely<Database>,
  env: DecisionEnvironment,
  executionId: string,
  stepId: string,
  audit?: AuditHook,
) {
  return request(db, env, executionId, { kind: 'rerunFromStep', stepId }, 'rerun', { finishedToo: true, audit });
}
