import { context as otelContext, SpanKind, trace, type Context, type Span } from '@opentelemetry/api';
import { newId } from '../uuid.js';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { decide, type Decision } from '../engine/decide.js';
import type { EngineEvent } from '../engine/events.js';
import { childrenToCancel } from '../engine/cascade.js';
import type { ItemSource, OpenedItems } from '../engine/item-source.js';
import {
  attemptChanges,
  decisionStepRows,
  executionRow,
  type AttemptChanges,
  type AttemptRow,
  type AttemptUpdate,
  type StepRow,
} from '../engine/projection.js';
import { type ExecutionState, TERMINAL_STATUSES } from '../engine/state.js';
import type { Trigger } from '../engine/triggers.js';
import type { RecipePlan } from '../recipe/plan.js';
import { commitDecision, type DecisionWrites } from '../store/decisions.js';
import type { AttemptUpdateRow } from '../store/attempts.js';
import type { ExecutionChange, ExecutionWrite, LockedExecution, SnapshotWrite } from '../store/executions.js';
import { selectItemWindow } from '../store/foreach-items.js';
import type { OutboxRow } from '../store/outbox.js';
import type { PayloadRow } from '../store/payloads.js';
import { selectLatestVersion } from '../store/recipes.js';
import { selectFinishedItemSteps } from '../store/steps.js';
import type { TimerJob } from '../store/timers.js';
import { ATTR } from '../observability/span-attributes.js';
import { contextFromTraceparent, traceparentOf } from '../observability/trace-context.js';
import { endSpan, hasSpan, linkIfOtherTrace, producerSpan, tracer } from '../observability/tracing.js';
import type { StepError } from '../protocol/messages.js';
import { commandTopicFor } from '../protocol/shards.js';
import type { WaitingCommandRow } from '../store/waiting-commands.js';
import { childFinishedMessage, commandMessage, idempotencyKeyOf, stepCancelMessage } from './command-message.js';
import type { DecisionEnvironment } from './decision-environment.js';
import { ExecutionNotFoundError, RecipeNotFoundError } from './errors.js';
import { subRecipeVersions } from './recipes.js';
import { indexPlan } from '../engine/plan-index.js';
import { remoteRegionOf } from '../regions/cross-region-route.js';

export { defaultDecisionEnvironment, TIMER_TASK, type DecisionEnvironment } from './decision-environment.js';

/** Triggers for one execution, decided in turn. */
export interface DecisionRequest {
  readonly executionId: string;
  readonly triggers: readonly Trigger[];
  /**
   * Per trigger, the context its decision span is a child of: a reply's CONSUMER span
   * (when it is in the execution's trace; see #decisionSpan). @default the span active in
   * the caller when it belongs to the execution's trace (a start), else the execution's
   * own trace context (a timer, an operator's request, which the decision span links to)
   */
  readonly parents?: readonly (Context | undefined)[];
  /** A new execution's trace context (a start): the start span's. @default none (stored as NULL) */
  readonly traceparent?: string;
  /** A new execution's reply topic (a start). @default the environment's */
  readonly replyTopic?: string;
}

/** Items read per query: a decision dispatching item n usually dispatches n+1.. next. */
const ITEM_WINDOW = 64;

/** One execution's share of a batch: where it started, and what its decisions so far made of it. */
interface Pending {
  readonly id: string;
  /** Undefined for an execution this batch starts. */
  readonly locked: LockedExecution | undefined;
  readonly plan: RecipePlan;
  readonly version: number;
  /** The execution's trace context: its start span's, stored with it. */
  readonly traceparent: string | null;
  readonly trace: Context | undefined;
  readonly replyTopic: string;
  state: ExecutionState | undefined;
  readonly events: EngineEvent[];
  /** Per event (same index), the context of the decision span that made it: what its messages are sent under. */
  readonly eventContexts: Context[];
  readonly opened: OpenedItems[];
  /** The net rows, as the last decision left them. */
  readonly steps: Map<string, StepRow>;
  readonly attemptInserts: Map<string, AttemptRow>;
  readonly attemptUpdates: Map<string, AttemptUpdate>;
  readonly items: Map<string, readonly unknown[]>;
  /** Step keys a rerun forgot: their stored rows are deleted before the batch's rows are written. */
  readonly forgotten: Set<string>;
  /** forEach items read from PostgreSQL, per forEach. */
  readonly itemCache: Map<string, Map<number, unknown>>;
  /** Events already looked at for sub-recipe starts. */
  childrenScanned: number;
  /** Events already looked at for sub-recipes to cancel. */
  cancelsScanned: number;
}

/** The columns an attempt update sets (undefined ones left out, so a merge never erases). */
function definedColumns(update: AttemptUpdate): Partial<AttemptUpdate> {
  return Object.fromEntries(Object.entries(update).filter(([, v]) => v !== undefined));
}

/**
 * Decisions of any number of executions, decided in memory and written together: the
 * engine runs on each execution's state in turn (a later decision sees the earlier ones'
 * state, items and finished steps through an overlay of the rows not yet written), and
 * `rows()` gives what the batch writes, net, for one `commitDecision`.
 */
class DecisionBatch {
  readonly #pending = new Map<string, Pending>();
  readonly decisions = new Map<string, Decision>();
  /** Triggers that changed nothing: a reply seen before, or one its attempt has moved past. */
  ignored = 0;
  /** Decision, start and producer spans of the batch: ended once it is written (or failed). */
  readonly spans: Span[] = [];
  /** States the batch's decisions made: no one else holds them, so later decisions may change them in place. */
  readonly #ownStates = new WeakSet<ExecutionState>();

  constructor(
    private readonly trx: Kysely<Database>,
    private readonly env: DecisionEnvironment,
  ) {}

  /** Decides a request's triggers, in order, then starts the sub-recipes they asked for. */
  async decide(request: DecisionRequest, locked: LockedExecution | undefined): Promise<void> {
    const pending = await this.#open(request, locked);
    if (pending === undefined) return;
    for (const [index, trigger] of request.triggers.entries()) {
      await this.#decideOne(pending, trigger, request.parents?.[index]);
    }
    await this.#startChildren(pending);
    await this.#cancelChildren(pending);
  }

  async #open(request: DecisionRequest, locked: LockedExecution | undefined): Promise<Pending | undefined> {
    const known = this.#pending.get(request.executionId);
    if (known !== undefined) return known;
    const first = request.triggers[0];
    if (first === undefined) return undefined;
    let recipe: string;
    let version: number;
    if (locked !== undefined) {
      recipe = locked.state.recipe;
      version = locked.state.version;
    } else if (first.kind === 'start') {
      recipe = first.recipe;
      version = first.version;
    } else {
      throw new ExecutionNotFoundError(`no execution ${request.executionId}`);
    }
    const traceparent = locked?.traceparent ?? request.traceparent ?? null;
    const pending: Pending = {
      id: request.executionId,
      locked,
      plan: await this.env.plans.get(this.trx, recipe, version),
      version,
      traceparent,
      trace: contextFromTraceparent(traceparent),
      replyTopic: locked?.reply_topic ?? request.replyTopic ?? this.env.replyTopic,
      state: locked?.state,
      events: [],
      eventContexts: [],
      opened: [],
      steps: new Map(),
      attemptInserts: new Map(),
      attemptUpdates: new Map(),
      items: new Map(),
      forgotten: new Set(),
      itemCache: new Map(),
      childrenScanned: 0,
      cancelsScanned: 0,
    };
    this.#pending.set(pending.id, pending);
    return pending;
  }

  /**
   * The decision span of one trigger, in the execution's trace: a child of the given
   * parent (a reply's CONSUMER span), or of the span active in the caller (a start
   * span), when that one is in the execution's trace; else a child of the execution's
   * start, linked to the other span (a timer job has none; an operator's request and a
   * reply that lost its context are traces of their own). The execution keeps one trace.
   */
  #decisionSpan(p: Pending, trigger: Trigger, given: Context | undefined): { span: Span; context: Context } {
    const active = otelContext.active();
    const inTrace = (c: Context) => hasSpan(c) && (p.trace === undefined || linkIfOtherTrace(c, p.trace).length === 0);
    let parent: Context;
    if (given !== undefined && inTrace(given)) parent = given;
    else if (given === undefined && inTrace(active)) parent = active;
    else parent = p.trace ?? given ?? active;
    const span = tracer().startSpan(
      `decide ${trigger.kind}`,
      {
        kind: SpanKind.INTERNAL,
        attributes: {
          [ATTR.executionId]: p.id,
          [ATTR.recipeName]: p.plan.name,
          [ATTR.recipeVersion]: p.version,
          [ATTR.triggerKind]: trigger.kind,
        },
        links: linkIfOtherTrace(given ?? active, parent),
      },
      parent,
    );
    this.spans.push(span);
    return { span, context: trace.setSpan(parent, span) };
  }

  async #decideOne(p: Pending, trigger: Trigger, parent?: Context): Promise<void> {
    const { span, context } = this.#decisionSpan(p, trigger, parent);
    const decision = await decide(p.state, trigger, {
      plan: p.plan,
      now: this.env.now(),
      newId,
      random: Math.random,
      items: this.#itemSource(p),
      // A state an earlier decision of this batch made is the batch's own: the next one
      // changes it in place (a batch of n replies to a forEach copies its steps once, not
      // n times). A state read from PostgreSQL is copied once by the first decision.
      stateOwned: p.state !== undefined && this.#ownStates.has(p.state),
    });
    span.setAttribute(ATTR.decisionEvents, decision.events.length);
    if (decision.events.length === 0 || decision.state === undefined) {
      this.ignored++;
      return;
    }
    // Attempts change segment by segment: a rerun forgets the steps it names, with the
    // rows earlier decisions of this batch made for them, before later events add rows.
    let segment: EngineEvent[] = [];
    for (const event of decision.events) {
      if (event.type !== 'ExecutionRewound') {
        segment.push(event);
        continue;
      }
      this.#mergeAttempts(p, attemptChanges(p.id, segment));
      segment = [];
      this.#forget(p, event.removedStepKeys);
    }
    this.#mergeAttempts(p, attemptChanges(p.id, segment));
    const rows = decisionStepRows(p.id, decision.state, decision.retired ?? new Map(), decision.events, p.plan);
    for (const [key, row] of rows) p.steps.set(key, row);
    for (const { forEachKey, items } of decision.items) p.items.set(forEachKey, items);
    p.events.push(...decision.events);
    for (let i = 0; i < decision.events.length; i++) p.eventContexts.push(context);
    p.opened.push(...decision.items);
    p.state = decision.state;
    this.#ownStates.add(decision.state);
  }

  #forget(p: Pending, stepKeys: readonly string[]): void {
    const keys = new Set(stepKeys);
    for (const key of keys) {
      p.forgotten.add(key);
      p.steps.delete(key);
      p.items.delete(key);
      p.itemCache.delete(key);
    }
    for (const [id, row] of p.attemptInserts) if (keys.has(row.step_key)) p.attemptInserts.delete(id);
    // Updates of stored attempts of these steps match nothing once their rows are deleted.
  }

  /** Folds changes into the batch's attempt rows: one insert or one update per attempt. */
  #mergeAttempts(p: Pending, changes: AttemptChanges): void {
    for (const row of changes.inserts) p.attemptInserts.set(row.id, row);
    for (const update of changes.updates) {
      const inserted = p.attemptInserts.get(update.id);
      if (inserted !== undefined) {
        p.attemptInserts.set(update.id, { ...inserted, ...definedColumns(update) });
      } else {
        p.attemptUpdates.set(update.id, {
          ...p.attemptUpdates.get(update.id),
          ...definedColumns(update),
          id: update.id,
          step_key: update.step_key,
        });
      }
    }
  }

  /** Items and finished item steps as PostgreSQL will hold them once the batch is written. */
  #itemSource(p: Pending): ItemSource {
    return {
      get: async (forEachKey, index) => {
        const opened = p.items.get(forEachKey);
        if (opened !== undefined) return opened[index];
        if (p.forgotten.has(forEachKey)) return undefined;
        let known = p.itemCache.get(forEachKey);
        if (known?.has(index) !== true) {
          const window = await selectItemWindow(this.trx, p.id, forEachKey, index, ITEM_WINDOW);
          known ??= new Map();
          for (const [i, data] of window) known.set(i, data);
          p.itemCache.set(forEachKey, known);
        }
        return known.get(index);
      },
      finished: async (stepIds) => {
        const stored = await selectFinishedItemSteps(this.trx, p.id, stepIds);
        for (const key of p.forgotten) stored.delete(key);
        for (const [key, row] of p.steps) {
          if (row.item_index === null || row.compensation || !stepIds.includes(row.step_id)) continue;
          if (row.status === 'completed' || row.status === 'skipped') stored.set(key, row.output);
          else stored.delete(key);
        }
        return stored;
      },
    };
  }

  /** Sub-recipe steps: each child starts in this same batch; a child whose recipe is missing fails its step. */
  async #startChildren(p: Pending): Promise<void> {
    while (p.childrenScanned < p.events.length) {
      const index = p.childrenScanned++;
      const event = p.events[index];
      if (event?.type !== 'ChildExecutionRequested') continue;
      const version = event.version ?? (await selectLatestVersion(this.trx, event.recipe));
      let pinned: Readonly<Record<string, number>> | undefined;
      try {
        if (version === undefined) throw new RecipeNotFoundError(`sub-recipe ${event.recipe} is not registered`);
        const plan = await this.env.plans.get(this.trx, event.recipe, version);
        pinned = await subRecipeVersions(this.trx, plan);
      } catch (error) {
        if (!(error instanceof RecipeNotFoundError)) throw error;
        // The parent's step fails at once; its events join the list this loop scans.
        await this.#decideOne(p, {
          kind: 'child.finished',
          childExecutionId: event.childExecutionId,
          status: 'failed',
          error: { code: error.code, message: error.message, retryable: false },
        });
        continue;
      }
      // The child's start span is a child of the decision that asked for it: the
      // sub-recipe's execution stays in its parent's trace.
      const requestedBy = this.#contextOfEvent(p, index);
      const start = tracer().startSpan(
        `start ${event.recipe}`,
        {
          kind: SpanKind.INTERNAL,
          attributes: {
            [ATTR.executionId]: event.childExecutionId,
            [ATTR.parentExecutionId]: p.id,
            [ATTR.recipeName]: event.recipe,
            [ATTR.recipeVersion]: version,
            [ATTR.stepKey]: event.stepKey,
          },
        },
        requestedBy,
      );
      this.spans.push(start);
      const started = trace.setSpan(requestedBy, start);
      const traceparent = traceparentOf(started);
      await this.decide(
        {
          executionId: event.childExecutionId,
          triggers: [
            {
              kind: 'start',
              executionId: event.childExecutionId,
              recipe: event.recipe,
              version,
              input: event.input,
              parent: { executionId: p.id, stepKey: event.stepKey },
              ...(pinned === undefined ? {} : { subRecipeVersions: pinned }),
            },
          ],
          parents: [started],
          ...(traceparent === undefined ? {} : { traceparent }),
          replyTopic: p.replyTopic,
        },
        undefined,
      );
    }
  }

  /**
   * Sub-recipe executions whose parent stopped waiting for them are cancelled in the same
   * batch: every running child of a cancelled execution, and the child of a sub-recipe
   * step the deadline cancelled. Each child's own decision cancels its children in turn.
   * The parent's lock is held, then the child's: a child's decisions never lock its
   * parent (a finished child tells it through the reply topic), so this order cannot
   * deadlock.
   */
  async #cancelChildren(p: Pending): Promise<void> {
    if (p.state === undefined || p.cancelsScanned >= p.events.length) return;
    const abandoned = childrenToCancel(p.state, p.events.slice(p.cancelsScanned));
    p.cancelsScanned = p.events.length;
    for (const { childExecutionId: id, reason } of abandoned) {
      const known = this.#pending.get(id);
      const locked =
        known === undefined ? (await this.env.states.lock(this.trx, this.env.plans, [id])).get(id) : undefined;
      const state = known?.state ?? locked?.state;
      // Gone (purged with its tree) or finished already: nothing runs.
      if (state === undefined || TERMINAL_STATUSES.includes(state.status)) continue;
      await this.decide({ executionId: id, triggers: [{ kind: 'cancel', reason }] }, locked);
    }
  }

  /** The context messages made by event `index` are sent under: its decision's span. */
  #contextOfEvent(p: Pending, index: number): Context {
    return p.eventContexts[index] ?? p.trace ?? otelContext.active();
  }

  /**
   * A message's PRODUCER span (ended with the batch) and the `traceparent` it carries:
   * the span's, or, without an SDK, the decision's parent context passed through.
   */
  #send(p: Pending, index: number, message: { topic: string; key: string; messageId: string }): string | null {
    const span = producerSpan(this.#contextOfEvent(p, index), {
      ...message,
      attributes: { [ATTR.executionId]: p.id },
    });
    this.spans.push(span);
    return traceparentOf(trace.setSpan(otelContext.active(), span)) ?? null;
  }

  /** What the batch writes: one entry per row, across executions. */
  rows(): DecisionWrites {
    const newExecutions: ExecutionWrite[] = [];
    const writes = {
      newExecutions,
      changedExecutions: [] as ExecutionChange[],
      snapshots: [] as SnapshotWrite[],
      events: [] as DecisionWrites['events'][number][],
      forgotten: [] as DecisionWrites['forgotten'][number][],
      items: [] as DecisionWrites['items'][number][],
      steps: [] as StepRow[],
      attemptInserts: [] as AttemptRow[],
      attemptUpdates: [] as AttemptUpdateRow[],
      payloads: [] as PayloadRow[],
      outbox: [] as OutboxRow[],
      waiting: [] as WaitingCommandRow[],
      timersAdded: [] as TimerJob[],
      timersRemoved: [] as string[],
    };
    for (const p of this.#pending.values()) {
      const state = p.state;
      this.decisions.set(p.id, { events: p.events, state, items: p.opened });
      if (p.events.length === 0 || state === undefined) continue;
      const firstSeq = (p.locked?.last_seq ?? 0) + 1;
      const lastSeq = firstSeq + p.events.length - 1;
      const row = executionRow(state, lastSeq);
      // The batch's id on the row: the cache entry made here is good only once it commits.
      const writtenBy = newId();
      const snapshotDue = this.env.states.snapshotDue(p.locked, lastSeq);
      if (p.locked === undefined) {
        newExecutions.push({ ...row, traceparent: p.traceparent, reply_topic: p.replyTopic, written_by: writtenBy });
      } else {
        writes.changedExecutions.push({ ...row, written_by: writtenBy, snapshot: snapshotDue });
      }
      if (snapshotDue) writes.snapshots.push({ execution_id: p.id, seq: lastSeq, state });
      this.env.states.remember(p.id, writtenBy, lastSeq, state);
      writes.events.push({ executionId: p.id, firstSeq, events: p.events });
      if (p.forgotten.size > 0) writes.forgotten.push({ executionId: p.id, stepKeys: [...p.forgotten] });
      for (const [forEachKey, items] of p.items) writes.items.push({ executionId: p.id, forEachKey, items });
      writes.steps.push(...p.steps.values());
      writes.attemptInserts.push(...p.attemptInserts.values());
      for (const update of p.attemptUpdates.values()) writes.attemptUpdates.push({ ...update, execution_id: p.id });
      this.#messagesAndTimers(p, state, writes);
    }
    return writes;
  }

  /** The linked remote region a step of this execution runs in, if any (its cancel goes there). */
  #remoteRegion(p: Pending, step: { readonly stepId: string }): string | undefined {
    const planned = indexPlan(p.plan).get(step.stepId)?.step;
    const region = planned?.type === 'task' ? planned.region : undefined;
    return remoteRegionOf(this.env.region, this.env.remoteRegions, region);
  }

  /** Commands of scheduled steps, a finished child's word to its parent, and timer jobs. */
  #messagesAndTimers(
    p: Pending,
    state: ExecutionState,
    out: {
      payloads: PayloadRow[];
      outbox: OutboxRow[];
      waiting: WaitingCommandRow[];
      timersAdded: TimerJob[];
      timersRemoved: string[];
    },
  ): void {
    const timers = new Map<string, TimerJob>();
    const cleared = new Set<string>();
    for (const [index, event] of p.events.entries()) {
      if (event.type === 'ExecutionCancelled') {
        // Attempts in flight are told, so their handlers can stop (ctx.signal).
        for (const step of Object.values(state.steps)) {
          if ((step.status === 'scheduled' || step.status === 'running') && step.stepExecutionId !== undefined)
            out.outbox.push(
              stepCancelMessage(p.id, step.stepExecutionId, 'the execution was cancelled', this.#remoteRegion(p, step)),
            );
        }
      }
      if (event.type === 'StepScheduled') {
        const route = this.env.route({
          capability: event.capability,
          ...(event.region === undefined ? {} : { region: event.region }),
          ...(event.contract === undefined ? {} : { contract: event.contract }),
        });
        // A held command gets its topic when a shard can take it; its span names the shared one.
        const topic = route.kind === 'send' ? route.topic : commandTopicFor(event.capability, event.region);
        const traceparent = this.#send(p, index, {
          topic,
          key: idempotencyKeyOf(p.id, event.stepKey),
          messageId: event.stepExecutionId,
        });
        const rows = commandMessage(this.env, state, event, traceparent, p.replyTopic, topic);
        if (route.kind === 'send') {
          out.outbox.push(rows.outbox);
        } else {
          const { topic: _unrouted, ...held } = rows.outbox;
          out.waiting.push({
            outbox: held,
            executionId: p.id,
            stepKey: event.stepKey,
            capability: event.capability,
            region: event.region ?? null,
            contract: event.contract ?? null,
            reasonCode: route.code,
            reason: route.reason,
          });
        }
        if (rows.payload !== undefined) out.payloads.push(rows.payload);
      } else if (event.type === 'StepCancelled' && event.stepExecutionId !== undefined) {
        const step = state.steps[event.stepKey];
        out.outbox.push(
          stepCancelMessage(
            p.id,
            event.stepExecutionId,
            event.reason.message,
            step === undefined ? undefined : this.#remoteRegion(p, step),
          ),
        );
      } else if (event.type === 'TimerScheduled') {
        timers.set(event.timerId, { executionId: p.id, timerId: event.timerId, fireAt: event.fireAt });
      } else if (event.type === 'TimerCleared') {
        cleared.add(event.timerId);
      } else if (
        (event.type === 'ExecutionCompleted' ||
          event.type === 'ExecutionFailed' ||
          event.type === 'ExecutionCancelled') &&
        state.parent !== undefined
      ) {
        // The parent hears of it through its reply stream, in a decision of its own.
        const status =
          event.type === 'ExecutionCompleted' ? 'completed' : event.type === 'ExecutionFailed' ? 'failed' : 'cancelled';
        const error: StepError | undefined = event.type === 'ExecutionFailed' ? event.error : undefined;
        const messageId = newId();
        const traceparent = this.#send(p, index, { topic: p.replyTopic, key: state.parent.executionId, messageId });
        out.outbox.push(
          childFinishedMessage(
            p.replyTopic,
            state.parent.executionId,
            state.executionId,
            status,
            event.type === 'ExecutionCompleted' ? event.output : undefined,
            error,
            traceparent,
            messageId,
          ),
        );
      }
    }
    for (const [id, timer] of timers) if (!cleared.has(id)) out.timersAdded.push(timer);
    for (const id of cleared) if (!timers.has(id)) out.timersRemoved.push(id);
  }
}

/** What a batch of decisions did. */
export interface DecisionBatchOutcome {
  /** The decision of each execution (its triggers' events folded together). */
  readonly decisions: Map<string, Decision>;
  /** Triggers that changed nothing (a duplicate or stale reply): no event, no write. */
  readonly ignored: number;
}

/**
 * Decisions of several executions in the caller's transaction, which has locked every
 * execution named (`locked`; a request without a locked execution must start one):
 * decided in memory in request order, then written by one `commitDecision` — a fixed
 * number of statements whatever the number of executions and triggers. Sub-recipes the
 * decisions start are decided and written in the same batch.
 */
export async function runDecisions(
  trx: Kysely<Database>,
  env: DecisionEnvironment,
  locked: ReadonlyMap<string, LockedExecution>,
  requests: readonly DecisionRequest[],
): Promise<DecisionBatchOutcome> {
  const batch = new DecisionBatch(trx, env);
  try {
    for (const request of requests) await batch.decide(request, locked.get(request.executionId));
    await commitDecision(trx, batch.rows(), env.timerTask);
  } catch (error) {
    for (const span of batch.spans) endSpan(span, error);
    throw error;
  }
  // Written (the caller's transaction commits them): the decisions and sends are done.
  for (const span of batch.spans) endSpan(span);
  env.observe?.(batch.decisions);
  return { decisions: batch.decisions, ignored: batch.ignored };
}

/**
 * One decision, inside the caller's transaction: locks the execution row (so decisions
 * for one execution never run at once, whichever process takes them; a start has no row
 * yet), decides, then writes everything it produced in one `commitDecision`.
 */
export async function runDecision(
  trx: Kysely<Database>,
  env: DecisionEnvironment,
  executionId: string,
  trigger: Trigger,
  options: {
    traceparent?: string | undefined;
    replyTopic?: string;
    locked?: LockedExecution;
    /** The decision span's parent (a start: its start span). @default see DecisionRequest.parents */
    parent?: Context;
  } = {},
): Promise<Decision> {
  // Keys as PostgreSQL returns ids (lower case), whatever case the caller used.
  executionId = executionId.toLowerCase();
  const locked =
    options.locked !== undefined
      ? new Map([[executionId, options.locked]])
      : trigger.kind === 'start'
        ? new Map<string, LockedExecution>()
        : await env.states.lock(trx, env.plans, [executionId]);
  if (trigger.kind !== 'start' && !locked.has(executionId)) {
    throw new ExecutionNotFoundError(`no execution ${executionId}`);
  }
  const { decisions } = await runDecisions(trx, env, locked, [
    {
      executionId,
      triggers: [trigger],
      ...(options.parent === undefined ? {} : { parents: [options.parent] }),
      ...(options.traceparent === undefined ? {} : { traceparent: options.traceparent }),
      ...(options.replyTopic === undefined ? {} : { replyTopic: options.replyTopic }),
    },
  ]);
  return decisions.get(executionId) ?? { events: [], state: undefined, items: [] };
}
