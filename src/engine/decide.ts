import type { StepError } from '../protocol/messages.js';
import { evaluate, evaluateCondition, evaluateInput } from '../recipe/expressions.js';
import type { ExpressionScope, ForEachStep, RecipePlan, Step, TaskStep } from '../recipe/plan.js';
import { compensableKeys } from './compensation.js';
import { DEADLINE_CODE, deadlineError, finalEvent, handlerSteps, stepsToCancel } from './finishing.js';
import { outputsOf, scopeOf } from './scope.js';
import { retryDelayMs } from './backoff.js';
import type { EngineEvent, Finishing, HandlerFailure, TimerPurpose } from './events.js';
import { ActionRefusedError } from './action-refused.js';
import { StateDraft } from './evolve.js';
import type { ItemSource, OpenedItems } from './item-source.js';
import { compareStepKeys, compensationKey, indexPlan, itemKey, parseStepKey, taskStep } from './plan-index.js';
import { type ExecutionState, type StepState, TERMINAL_STATUSES } from './state.js';
import type { AttemptStart, Trigger } from './triggers.js';

/** What a decision may use besides state and trigger; fixed values make it replayable. */
export interface DecideContext {
  readonly plan: RecipePlan;
  readonly now: Date;
  /** A new unique id (UUID) for step attempts, timers and child executions. */
  readonly newId: () => string;
  /** A number in [0, 1) for retry jitter. */
  readonly random: () => number;
  /** forEach item data opened by earlier decisions (immutable once stored). */
  readonly items: ItemSource;
  /**
   * The caller gives the state up: the decision changes it in place instead of copying
   * what its events change (one copy of a forEach's in-flight steps per decision), and
   * the caller must not read the state it passed afterwards. For a caller that chains
   * decisions on states it made itself. @default false
   */
  readonly stateOwned?: boolean;
}

export interface Decision {
  /** Events to append, in order; empty when the trigger changes nothing (a duplicate, a stale reply). */
  readonly events: readonly EngineEvent[];
  /** The state after those events (also what `replay` of the whole log gives). */
  readonly state: ExecutionState | undefined;
  /** forEach item lists opened by this decision: stored apart, in the same transaction. */
  readonly items: readonly OpenedItems[];
  /**
   * Item step states the events took out of the state (finished forEach items), for the
   * step rows (see decisionStepRows). @default none
   */
  readonly retired?: ReadonlyMap<string, StepState>;
}

type Progress = 'done' | 'blocked' | 'failed';

/** Error codes the engine itself gives step failures. */
export const ENGINE_ERROR_CODES = {
  expression: 'expression_failed',
  scheduleToStart: 'timeout.schedule_to_start',
  startToClose: 'timeout.start_to_close',
  heartbeat: 'timeout.heartbeat',
  signalTimeout: 'signal_timeout',
  childCancelled: 'child_cancelled',
  childFailed: 'child_failed',
  /** The execution's deadline passed (the execution ends `timed_out`). */
  deadline: DEADLINE_CODE,
} as const;

/** A step's failure from an error of its expressions: the message names the step (and the expression). */
function errorOf(error: unknown, stepKey?: string, code: string = ENGINE_ERROR_CODES.expression): StepError {
  const message = error instanceof Error ? error.message : String(error);
  return { code, message: stepKey === undefined ? message : `step ${stepKey}: ${message}`, retryable: false };
}

/**
 * What happens next in an execution: a pure function of (state, trigger) and the
 * context's clock, id source and randomness. It reads no database and sends nothing;
 * the control plane appends the events it returns, writes their commands to the
 * outbox and their timers to graphile-worker, in one transaction.
 */
export async function decide(
  state: ExecutionState | undefined,
  trigger: Trigger,
  ctx: DecideContext,
): Promise<Decision> {
  return new Decider(state, ctx).run(trigger);
}

class Decider {
  readonly #ctx: DecideContext;
  readonly #at: string;
  readonly #events: EngineEvent[] = [];
  /** Items opened by this decision, readable before they are stored. */
  readonly #opened = new Map<string, readonly unknown[]>();
  /** Item step states this decision's events took out of the state (not yet in the step rows). */
  readonly #retired = new Map<string, StepState>();
  /** The state as this decision's events left it (one copy of what they change, not one per event). */
  readonly #draft: StateDraft;

  constructor(state: ExecutionState | undefined, ctx: DecideContext) {
    this.#draft = new StateDraft(state, ctx.plan, ctx.stateOwned === true);
    this.#ctx = ctx;
    this.#at = ctx.now.toISOString();
  }

  get #state(): ExecutionState | undefined {
    return this.#draft.state;
  }

  get #s(): ExecutionState {
    const state = this.#draft.state;
    if (state === undefined) throw new Error('no execution state');
    return state;
  }

  #emit(event: EngineEvent): void {
    this.#events.push(event);
    const retired = this.#draft.apply(event);
    for (const key in retired) {
      const st = retired[key];
      if (st !== undefined) this.#retired.set(key, st);
    }
  }

  async run(trigger: Trigger): Promise<Decision> {
    if (trigger.kind === 'start') {
      if (this.#state !== undefined) return this.#result(); // Started already: same execution.
      this.#emit({
        type: 'ExecutionStarted',
        at: this.#at,
        executionId: trigger.executionId,
        recipe: trigger.recipe,
        version: trigger.version,
        input: trigger.input,
        ...(trigger.idempotencyKey === undefined ? {} : { idempotencyKey: trigger.idempotencyKey }),
        ...(trigger.parent === undefined ? {} : { parent: trigger.parent }),
        ...(trigger.subRecipeVersions === undefined ? {} : { subRecipeVersions: trigger.subRecipeVersions }),
        ...this.#deadlineOf(trigger.deadlineMs),
      });
      const deadlineAt = this.#s.deadlineAt;
      if (deadlineAt !== undefined) this.#timer(Date.parse(deadlineAt) - this.#ctx.now.getTime(), { kind: 'deadline' });
    } else {
      if (this.#state === undefined) return this.#result();
      if (TERMINAL_STATUSES.includes(this.#state.status)) {
        if (trigger.kind === 'retryStep' || trigger.kind === 'skipStep') {
          throw new ActionRefusedError(
            `execution ${this.#state.executionId} is ${this.#state.status}: use rerunFromStep to run it again`,
          );
        }
        if (trigger.kind !== 'rerunFromStep') return this.#result();
      }
      await this.#apply(trigger);
    }
    await this.#progress();
    return this.#result();
  }

  #result(): Decision {
    return {
      events: this.#events,
      state: this.#draft.snapshot(),
      items: [...this.#opened].map(([forEachKey, items]) => ({ forEachKey, items })),
      retired: this.#retired,
    };
  }

  // ---- triggers -------------------------------------------------------------------

  async #apply(trigger: Exclude<Trigger, { kind: 'start' }>): Promise<void> {
    switch (trigger.kind) {
      case 'step.started': {
        const key = this.#current(trigger.stepExecutionId, ['scheduled']);
        if (key === undefined) return;
        this.#clearTimers((p) => p.kind === 'schedule-to-start' && p.stepExecutionId === trigger.stepExecutionId);
        this.#emit({
          type: 'StepStarted',
          at: this.#at,
          stepKey: key,
          stepExecutionId: trigger.stepExecutionId,
          workerId: trigger.workerId,
          ...(trigger.startedAt === undefined ? {} : { startedAt: this.#notAfterNow(trigger.startedAt) }),
        });
        // Armed from now, not from startedAt: the window is the control plane's, and a
        // command with a start-to-close timeout reports its start at once (see the worker).
        const timeouts = this.#timeoutsOf(key);
        if (timeouts.startToCloseMs !== undefined) {
          this.#timer(timeouts.startToCloseMs, {
            kind: 'start-to-close',
            stepKey: key,
            stepExecutionId: trigger.stepExecutionId,
          });
        }
        if (timeouts.heartbeatMs !== undefined) {
          this.#timer(timeouts.heartbeatMs, {
            kind: 'heartbeat',
            stepKey: key,
            stepExecutionId: trigger.stepExecutionId,
          });
        }
        return;
      }
      case 'step.heartbeat': {
        const key = this.#current(trigger.stepExecutionId, ['scheduled', 'running']);
        if (key === undefined) return;
        this.#emit({
          type: 'StepHeartbeat',
          at: this.#at,
          stepKey: key,
          stepExecutionId: trigger.stepExecutionId,
          ...(trigger.progress === undefined ? {} : { progress: trigger.progress }),
        });
        return;
      }
      case 'step.completed': {
        const key = this.#current(trigger.stepExecutionId, ['scheduled', 'running']);
        if (key === undefined) return;
        this.#clearTimers((p) => 'stepExecutionId' in p && p.stepExecutionId === trigger.stepExecutionId);
        this.#emit({
          type: 'StepCompleted',
          at: this.#at,
          stepKey: key,
          stepExecutionId: trigger.stepExecutionId,
          output: trigger.output ?? null,
          ...this.#startOf(key, trigger),
        });
        return;
      }
      case 'step.failed': {
        const key = this.#current(trigger.stepExecutionId, ['scheduled', 'running']);
        if (key === undefined) return;
        if (trigger.deadLettered === true) {
          // The command is kept in a dead-letter topic: the step waits for an operator
          // (reprocess, retryStep, skipStep) instead of failing the whole execution.
          this.#clearTimers((p) => 'stepExecutionId' in p && p.stepExecutionId === trigger.stepExecutionId);
          this.#emit({
            type: 'StepDeadLettered',
            at: this.#at,
            stepKey: key,
            stepExecutionId: trigger.stepExecutionId,
            error: trigger.error,
            ...this.#startOf(key, trigger),
          });
          return;
        }
        this.#fail(key, trigger.error, trigger.stepExecutionId, this.#startOf(key, trigger));
        return;
      }
      case 'requeue': {
        const key = this.#current(trigger.stepExecutionId, ['dead_lettered']);
        if (key === undefined) return; // Not parked (retried, skipped, rerun): nothing to put back.
        this.#emit({ type: 'StepRequeued', at: this.#at, stepKey: key, stepExecutionId: trigger.stepExecutionId });
        return;
      }
      case 'retryStep':
        this.#operatorRetry(trigger.stepKey);
        return;
      case 'skipStep':
        this.#operatorSkip(trigger.stepKey, trigger.output);
        return;
      case 'rerunFromStep':
        await this.#rerunFrom(trigger.stepId);
        return;
      case 'timer':
        await this.#timerFired(trigger.timerId);
        return;
      case 'signal': {
        this.#emit({ type: 'SignalReceived', at: this.#at, name: trigger.name, payload: trigger.payload });
        // Of several steps waiting for this signal (parallel branches, forEach items), the first in key order.
        const waiting = Object.keys(this.#s.steps)
          .filter((k) => {
            const st = this.#s.steps[k];
            if (st?.status !== 'open') return false;
            const step = indexPlan(this.#ctx.plan).get(st.stepId)?.step;
            return step?.type === 'waitForSignal' && step.signal === trigger.name;
          })
          .sort(compareStepKeys)[0];
        if (waiting !== undefined) this.#consumeSignal(waiting, trigger.name);
        return;
      }
      case 'child.finished': {
        const entry = Object.entries(this.#s.steps).find(
          ([, st]) => st.childExecutionId === trigger.childExecutionId && st.status === 'open',
        );
        if (entry === undefined) return;
        const [key] = entry;
        if (trigger.status === 'completed') {
          this.#emit({ type: 'StepCompleted', at: this.#at, stepKey: key, output: trigger.output ?? null });
        } else {
          const error =
            trigger.status === 'cancelled'
              ? {
                  code: ENGINE_ERROR_CODES.childCancelled,
                  message: `sub-recipe execution ${trigger.childExecutionId} was cancelled`,
                  retryable: false,
                }
              : {
                  code: ENGINE_ERROR_CODES.childFailed,
                  message: `sub-recipe execution ${trigger.childExecutionId} failed: ${trigger.error?.message ?? 'unknown error'}`,
                  retryable: false,
                  ...(trigger.error === undefined ? {} : { details: trigger.error }),
                };
          this.#emit({ type: 'StepFailed', at: this.#at, stepKey: key, error });
        }
        return;
      }
      case 'cancel':
        // Its deadline's job goes too (other timers fire into a finished execution and are ignored).
        this.#clearTimers((p) => p.kind === 'deadline');
        this.#emit({
          type: 'ExecutionCancelled',
          at: this.#at,
          ...(trigger.reason === undefined ? {} : { reason: trigger.reason }),
        });
        return;
      case 'pause':
        if (this.#s.status === 'running') this.#emit({ type: 'ExecutionPaused', at: this.#at });
        return;
      case 'resume':
        if (this.#s.status === 'paused') this.#emit({ type: 'ExecutionResumed', at: this.#at });
        return;
    }
  }

  // ---- operator actions ------------------------------------------------------------

  #stepOrRefuse(stepKey: string) {
    const st = this.#s.steps[stepKey];
    if (st === undefined) {
      throw new ActionRefusedError(
        `execution ${this.#s.executionId} has no step "${stepKey}" (not started or unknown)`,
      );
    }
    return st;
  }

  /** Statuses in which a task step is waiting or in flight, so an operator may retry or skip it. */
  static readonly #ACTIONABLE = ['dead_lettered', 'retry_wait', 'retry_ready', 'scheduled', 'running'];

  #operatorRetry(stepKey: string): void {
    const st = this.#stepOrRefuse(stepKey);
    if (taskStep(this.#ctx.plan, st.stepId) === undefined) {
      throw new ActionRefusedError(`step "${stepKey}" is not a task step: only task steps can be retried`);
    }
    if (!Decider.#ACTIONABLE.includes(st.status)) {
      throw new ActionRefusedError(
        `step "${stepKey}" is ${st.status}: only a step that is dead-lettered, waiting to retry or in flight can be retried`,
      );
    }
    this.#clearTimers((p) => 'stepKey' in p && p.stepKey === stepKey);
    const abandoned = ['dead_lettered', 'scheduled', 'running'].includes(st.status) ? st.stepExecutionId : undefined;
    this.#emit({
      type: 'StepRetryReady',
      at: this.#at,
      stepKey,
      byOperator: true,
      ...(abandoned === undefined ? {} : { abandonedStepExecutionId: abandoned }),
    });
  }

  #operatorSkip(stepKey: string, output: unknown): void {
    const st = this.#stepOrRefuse(stepKey);
    const kind = parseStepKey(stepKey).compensation ? 'task' : indexPlan(this.#ctx.plan).get(st.stepId)?.step.type;
    const waiting = (kind === 'sleep' || kind === 'waitForSignal') && st.status === 'open';
    if (!waiting && !(kind === 'task' && Decider.#ACTIONABLE.includes(st.status))) {
      throw new ActionRefusedError(
        `step "${stepKey}" (${kind ?? 'unknown'}, ${st.status}) cannot be skipped: only a task step that is dead-lettered, waiting to retry or in flight, or a sleep or signal wait, can`,
      );
    }
    this.#clearTimers((p) => 'stepKey' in p && p.stepKey === stepKey);
    const abandoned = ['dead_lettered', 'scheduled', 'running'].includes(st.status) ? st.stepExecutionId : undefined;
    this.#emit({
      type: 'StepCompleted',
      at: this.#at,
      stepKey,
      output: output ?? null,
      skippedByOperator: true,
      ...(abandoned === undefined ? {} : { abandonedStepExecutionId: abandoned }),
    });
  }

  async #rerunFrom(stepId: string): Promise<void> {
    const top = this.#ctx.plan.steps.findIndex((s) => s.id === stepId);
    if (top < 0) {
      throw new ActionRefusedError(
        `"${stepId}" is not a top-level step of ${this.#s.recipe} v${this.#s.version}: rerun from one of ${this.#ctx.plan.steps.map((s) => s.id).join(', ')}`,
      );
    }
    if (this.#s.status === 'compensating') {
      throw new ActionRefusedError(`execution ${this.#s.executionId} is compensating: rerun once it has failed`);
    }
    const forgotten = new Set<string>();
    const collect = (steps: readonly Step[]) => {
      for (const step of steps) {
        forgotten.add(step.id);
        if (step.type === 'parallel') step.branches.forEach(collect);
        if (step.type === 'forEach') collect(step.steps);
      }
    };
    collect(this.#ctx.plan.steps.slice(top));
    // The handlers run again when the execution is over again.
    collect([...(this.#ctx.plan.onFailure ?? []), ...(this.#ctx.plan.finally ?? [])]);
    const keys = Object.keys(this.#s.steps);
    const undone = keys.filter((k) => {
      const { stepId: id, compensation } = parseStepKey(k);
      return compensation && !forgotten.has(id);
    });
    if (undone.length > 0) {
      throw new ActionRefusedError(
        `steps before "${stepId}" were compensated (${undone.join(', ')}): rerun from an earlier step`,
      );
    }
    // Finished forEach items are no longer in the state: their step rows name them.
    const retired = await this.#ctx.items.finished([...forgotten]);
    const removedStepKeys = [
      ...new Set([...keys.filter((k) => forgotten.has(parseStepKey(k).stepId)), ...retired.keys()]),
    ];
    this.#clearTimers((p) => 'stepKey' in p && removedStepKeys.includes(p.stepKey));
    this.#emit({ type: 'ExecutionRewound', at: this.#at, fromStepId: stepId, removedStepKeys });
  }

  /** The step key of an attempt still in flight in one of `statuses`; undefined for stale replies. */
  /**
   * Who began the attempt and when, from a final reply, when no StepStarted recorded it
   * (the step is still `scheduled`): a short command's only reply is its last.
   */
  #startOf(key: string, reply: AttemptStart): AttemptStart {
    if (this.#s.steps[key]?.status !== 'scheduled' || reply.startedAt === undefined) return {};
    return {
      startedAt: this.#notAfterNow(reply.startedAt),
      ...(reply.workerId === undefined ? {} : { workerId: reply.workerId }),
    };
  }

  /** A worker's time, clamped to the decision's: a fast worker clock cannot start an attempt after it ended. */
  #notAfterNow(at: string): string {
    return Date.parse(at) > this.#ctx.now.getTime() ? this.#at : at;
  }

  #current(stepExecutionId: string, statuses: readonly string[]): string | undefined {
    const key = this.#s.attempts[stepExecutionId];
    if (key === undefined) return undefined;
    const step = this.#s.steps[key];
    return step !== undefined && step.stepExecutionId === stepExecutionId && statuses.includes(step.status)
      ? key
      : undefined;
  }

  async #timerFired(timerId: string): Promise<void> {
    const purpose = this.#s.timers[timerId];
    if (purpose === undefined) return; // Cleared or already handled: a duplicate job run.
    this.#emit({ type: 'TimerCleared', at: this.#at, timerId });
    if (purpose.kind === 'deadline') {
      await this.#deadlinePassed();
      return;
    }
    const step = this.#s.steps[purpose.stepKey];
    switch (purpose.kind) {
      case 'retry':
        if (step?.status === 'retry_wait')
          this.#emit({ type: 'StepRetryReady', at: this.#at, stepKey: purpose.stepKey });
        return;
      case 'sleep':
        if (step?.status === 'open')
          this.#emit({ type: 'StepCompleted', at: this.#at, stepKey: purpose.stepKey, output: null });
        return;
      case 'signal-timeout': {
        if (step?.status !== 'open') return;
        const plan = indexPlan(this.#ctx.plan).get(step.stepId)?.step;
        if (plan?.type === 'waitForSignal' && plan.onTimeout === 'continue') {
          this.#emit({ type: 'StepCompleted', at: this.#at, stepKey: purpose.stepKey, output: null });
        } else {
          const signal = plan?.type === 'waitForSignal' ? plan.signal : '?';
          this.#emit({
            type: 'StepFailed',
            at: this.#at,
            stepKey: purpose.stepKey,
            error: {
              code: ENGINE_ERROR_CODES.signalTimeout,
              message: `no signal "${signal}" arrived in time`,
              retryable: false,
            },
          });
        }
        return;
      }
      case 'schedule-to-start':
      case 'start-to-close':
      case 'heartbeat': {
        const statuses = purpose.kind === 'schedule-to-start' ? ['scheduled'] : ['scheduled', 'running'];
        if (this.#current(purpose.stepExecutionId, statuses) === undefined) return;
        if (purpose.kind === 'heartbeat') {
          const limit = this.#timeoutsOf(purpose.stepKey).heartbeatMs ?? 0;
          const last = Date.parse(step?.lastHeartbeatAt ?? this.#at);
          const due = last + limit;
          if (due > this.#ctx.now.getTime()) {
            // A heartbeat came since the timer was set: wait for the rest of the window.
            this.#timer(due - this.#ctx.now.getTime(), purpose);
            return;
          }
        }
        const code = {
          'schedule-to-start': ENGINE_ERROR_CODES.scheduleToStart,
          'start-to-close': ENGINE_ERROR_CODES.startToClose,
          heartbeat: ENGINE_ERROR_CODES.heartbeat,
        }[purpose.kind];
        this.#fail(
          purpose.stepKey,
          { code, message: `step ${purpose.stepKey} exceeded its ${purpose.kind} timeout`, retryable: true },
          purpose.stepExecutionId,
        );
        return;
      }
    }
  }

  /** A step attempt failed: retry it after back-off when the policy allows, or fail it. */
  #fail(key: string, error: StepError, stepExecutionId?: string, start: AttemptStart = {}): void {
    this.#clearTimers(
      (p) => stepExecutionId !== undefined && 'stepExecutionId' in p && p.stepExecutionId === stepExecutionId,
    );
    const { stepId } = parseStepKey(key);
    const retry = taskStep(this.#ctx.plan, stepId)?.retry;
    const attempt = this.#s.steps[key]?.attempt ?? 1;
    const retryable =
      error.retryable &&
      retry !== undefined &&
      !retry.nonRetryableErrorCodes.includes(error.code) &&
      attempt < retry.maxAttempts;
    const base = {
      type: 'StepFailed' as const,
      at: this.#at,
      stepKey: key,
      error,
      ...(stepExecutionId === undefined ? {} : { stepExecutionId }),
      ...start,
    };
    if (!retryable) {
      this.#emit(base);
      return;
    }
    const delay = retryDelayMs(retry, attempt, this.#ctx.random());
    this.#emit({ ...base, retryAt: new Date(this.#ctx.now.getTime() + delay).toISOString() });
    this.#timer(delay, { kind: 'retry', stepKey: key });
  }

  #timer(delayMs: number, purpose: TimerPurpose): void {
    this.#emit({
      type: 'TimerScheduled',
      at: this.#at,
      timerId: this.#ctx.newId(),
      fireAt: new Date(this.#ctx.now.getTime() + Math.max(0, delayMs)).toISOString(),
      purpose,
    });
  }

  #clearTimers(match: (purpose: TimerPurpose) => boolean): void {
    // In timer id order, not the record's (see compareStepKeys).
    const cleared: string[] = [];
    for (const [timerId, purpose] of Object.entries(this.#s.timers)) if (match(purpose)) cleared.push(timerId);
    for (const timerId of cleared.sort()) this.#emit({ type: 'TimerCleared', at: this.#at, timerId });
  }

  #consumeSignal(key: string, name: string): void {
    const payload = this.#s.signals[name]?.[0];
    this.#emit({ type: 'SignalConsumed', at: this.#at, name, stepKey: key });
    this.#clearTimers((p) => p.kind === 'signal-timeout' && p.stepKey === key);
    this.#emit({ type: 'StepCompleted', at: this.#at, stepKey: key, output: payload ?? null });
  }

  #timeoutsOf(key: string) {
    const { stepId, compensation } = parseStepKey(key);
    return compensation ? {} : (taskStep(this.#ctx.plan, stepId)?.timeouts ?? {});
  }

  // ---- progress ---------------------------------------------------------------------

  async #progress(): Promise<void> {
    const status = this.#s.status;
    if (this.#s.finishing !== undefined) {
      if (status === 'running' || status === 'compensating') await this.#finish();
      return;
    }
    if (status === 'running' || status === 'paused') {
      const result = await this.#sequence(this.#ctx.plan.steps, undefined);
      if (result === 'done') {
        let output: unknown;
        try {
          output =
            this.#ctx.plan.output === undefined
              ? outputsOf(this.#s, this.#ctx.plan, undefined)
              : await evaluate(this.#ctx.plan.output, await this.#scope(undefined));
        } catch (error) {
          await this.#conclude({ outcome: 'failed', error: errorOf(error), compensated: false });
          return;
        }
        await this.#conclude({ outcome: 'completed', output: output ?? null });
      } else if (result === 'failed') {
        await this.#startCompensation();
      }
    }
    // Not when the compensation just ended it: its handlers run instead (FinishingStarted).
    if (this.#s.status === 'compensating' && !this.#finishing) await this.#compensate();
  }

  /** Whether the execution is running its onFailure and finally steps (read afresh: events change it). */
  get #finishing(): boolean {
    return this.#draft.state?.finishing !== undefined;
  }

  /** `deadlineAt` of a new execution: the start's deadline, else its recipe's, from now. */
  #deadlineOf(startMs: number | undefined): { deadlineAt?: string } {
    const ms = startMs ?? this.#ctx.plan.deadlineMs;
    return ms === undefined ? {} : { deadlineAt: new Date(this.#ctx.now.getTime() + ms).toISOString() };
  }

  /**
   * The deadline passed: every step in flight or waiting is cancelled (its replies are
   * stale from now on) and the saga unwinds as after a failure, to end `timed_out`. An
   * execution already unwinding (compensating, or running its handlers) finishes that.
   */
  async #deadlinePassed(): Promise<void> {
    const s = this.#s;
    if ((s.status !== 'running' && s.status !== 'paused') || s.finishing !== undefined) return;
    const reason = deadlineError(s.deadlineAt ?? this.#at);
    for (const cancelled of stepsToCancel(s, this.#at, reason)) {
      this.#clearTimers((p) => 'stepKey' in p && p.stepKey === cancelled.stepKey);
      this.#emit(cancelled);
    }
    await this.#startCompensation(reason, true);
  }

  /**
   * The execution is over: it ends now, or first runs its onFailure and finally steps
   * (FinishingStarted), and ends once they did.
   */
  async #conclude(finishing: Finishing): Promise<void> {
    if (handlerSteps(this.#ctx.plan, finishing.outcome).length === 0) {
      this.#end(finishing, []);
      return;
    }
    this.#emit({ type: 'FinishingStarted', at: this.#at, finishing });
    await this.#finish();
  }

  /**
   * Runs the onFailure and finally steps one after the other. One that fails for good
   * is recorded and the next runs: a handler's failure never hides the execution's.
   */
  async #finish(): Promise<void> {
    const finishing = this.#s.finishing;
    if (finishing === undefined) return;
    const failures: HandlerFailure[] = [];
    for (const step of handlerSteps(this.#ctx.plan, finishing.outcome)) {
      const key = step.id;
      const before = this.#s.steps[key];
      if (before === undefined) await this.#begin(step, key, undefined);
      else if (before.status === 'retry_ready') await this.#dispatch(step, key, before.attempt + 1, undefined, false);
      const st = this.#s.steps[key];
      if (st === undefined || st.status === 'completed' || st.status === 'skipped') continue;
      if (st.status !== 'failed') return; // In flight.
      failures.push({ stepKey: key, error: st.error ?? { code: 'step_failed', message: key, retryable: false } });
    }
    this.#end(finishing, failures);
  }

  /** The execution's last event, as `finishing` says; the deadline's job goes with it. */
  #end(finishing: Finishing, handlerFailures: readonly HandlerFailure[]): void {
    this.#clearTimers((p) => p.kind === 'deadline');
    this.#emit(finalEvent(this.#at, finishing, handlerFailures));
  }

  /** New work starts only while running; a paused execution lets what runs finish. */
  get #dispatching(): boolean {
    return this.#s.status === 'running';
  }

  async #sequence(steps: readonly Step[], item: number | undefined): Promise<Progress> {
    for (const step of steps) {
      // Finished steps are passed over without an await: a long recipe walks its whole
      // finished prefix on every decision. (The live record each time: a step's decision
      // may replace it.)
      const status = this.#s.steps[item === undefined ? step.id : itemKey(step.id, item)]?.status;
      if (status === 'completed' || status === 'skipped') continue;
      const result = await this.#step(step, item);
      if (result !== 'done') return result;
    }
    return 'done';
  }

  async #step(step: Step, item: number | undefined): Promise<Progress> {
    const key = item === undefined ? step.id : itemKey(step.id, item);
    if (this.#s.steps[key] === undefined) {
      if (!this.#dispatching) return 'blocked';
      const started = await this.#begin(step, key, item);
      if (started !== undefined) return started;
    }
    const st = this.#s.steps[key];
    switch (st?.status) {
      case 'completed':
      case 'skipped':
        return 'done';
      case 'failed':
        return 'failed';
      case 'retry_ready':
        if (this.#dispatching && step.type === 'task') await this.#dispatch(step, key, st.attempt + 1, item, false);
        return this.#s.steps[key]?.status === 'failed' ? 'failed' : 'blocked';
      case 'open':
        if (step.type === 'parallel') return this.#parallel(step.branches, key);
        if (step.type === 'forEach') return this.#forEach(step, key);
        return 'blocked';
      default:
        return 'blocked';
    }
  }

  /** Starts a step not yet begun; returns a result when it finished at once. */
  async #begin(step: Step, key: string, item: number | undefined): Promise<Progress | undefined> {
    try {
      // Built when an expression needs it (most steps have one at most): a scope holds
      // every output so far, and reading an item's value may query the database.
      let built: ExpressionScope | undefined;
      const scope = async () => (built ??= await this.#scope(item, step.id));
      if (step.when !== undefined && !(await evaluateCondition(step.when, await scope()))) {
        this.#emit({ type: 'StepSkipped', at: this.#at, stepKey: key, reason: 'condition' });
        return 'done';
      }
      switch (step.type) {
        case 'task':
          await this.#dispatch(step, key, 1, item, false);
          return this.#s.steps[key]?.status === 'failed' ? 'failed' : 'blocked';
        case 'parallel':
          this.#emit({ type: 'StepOpened', at: this.#at, stepKey: key, stepId: step.id, kind: 'parallel' });
          return undefined;
        case 'forEach': {
          const items = await evaluate(step.items, await scope());
          if (!Array.isArray(items))
            throw new Error(
              `forEach ${step.id}: items must be an array, got ${items === undefined ? 'nothing' : typeof items}`,
            );
          this.#opened.set(key, items);
          this.#emit({
            type: 'StepOpened',
            at: this.#at,
            stepKey: key,
            stepId: step.id,
            kind: 'forEach',
            itemCount: items.length,
          });
          return undefined;
        }
        case 'sleep': {
          let fireAt: number;
          if (step.until !== undefined) {
            const until = await evaluate(step.until, await scope());
            fireAt = typeof until === 'string' ? Date.parse(until) : Number.NaN;
            if (Number.isNaN(fireAt))
              throw new Error(`sleep ${step.id}: until must give an ISO-8601 timestamp, got ${JSON.stringify(until)}`);
          } else {
            fireAt = this.#ctx.now.getTime() + (step.durationMs ?? 0);
          }
          this.#emit({ type: 'StepOpened', at: this.#at, stepKey: key, stepId: step.id, kind: 'sleep' });
          this.#timer(fireAt - this.#ctx.now.getTime(), { kind: 'sleep', stepKey: key });
          return 'blocked';
        }
        case 'waitForSignal':
          this.#emit({ type: 'StepOpened', at: this.#at, stepKey: key, stepId: step.id, kind: 'waitForSignal' });
          if ((this.#s.signals[step.signal]?.length ?? 0) > 0) {
            this.#consumeSignal(key, step.signal);
            return 'done';
          }
          if (step.timeoutMs !== undefined) this.#timer(step.timeoutMs, { kind: 'signal-timeout', stepKey: key });
          return 'blocked';
        case 'subRecipe': {
          const input = await evaluateInput(step.input, await scope());
          const childExecutionId = this.#ctx.newId();
          // The step's own version, else the one fixed when this execution started.
          const version = step.version ?? this.#s.subRecipeVersions?.[step.recipe];
          this.#emit({
            type: 'StepOpened',
            at: this.#at,
            stepKey: key,
            stepId: step.id,
            kind: 'subRecipe',
            childExecutionId,
          });
          this.#emit({
            type: 'ChildExecutionRequested',
            at: this.#at,
            stepKey: key,
            childExecutionId,
            recipe: step.recipe,
            ...(version === undefined ? {} : { version }),
            input,
          });
          return 'blocked';
        }
      }
    } catch (error) {
      this.#emit({ type: 'StepFailed', at: this.#at, stepKey: key, error: errorOf(error, key) });
      return 'failed';
    }
  }

  async #dispatch(
    step: TaskStep,
    key: string,
    attempt: number,
    item: number | undefined,
    compensation: boolean,
  ): Promise<void> {
    const mapping = compensation ? step.compensate?.input : step.input;
    let input: unknown;
    try {
      input = mapping === undefined ? {} : await evaluateInput(mapping, await this.#scope(item, step.id));
    } catch (error) {
      this.#emit({ type: 'StepFailed', at: this.#at, stepKey: key, error: errorOf(error, key) });
      return;
    }
    const stepExecutionId = this.#ctx.newId();
    const timeouts = compensation ? {} : step.timeouts;
    this.#emit({
      type: 'StepScheduled',
      at: this.#at,
      stepKey: key,
      stepId: step.id,
      ...(item === undefined ? {} : { itemIndex: item }),
      stepExecutionId,
      attempt,
      capability: compensation ? (step.compensate?.capability ?? step.capability) : step.capability,
      input: input ?? null,
      ...(step.region === undefined ? {} : { region: step.region }),
      ...(compensation || step.contract === undefined ? {} : { contract: step.contract }),
      timeouts,
      maxAttempts: step.retry.maxAttempts,
      ...(compensation ? { compensation: true } : {}),
    });
    if (timeouts.scheduleToStartMs !== undefined) {
      this.#timer(timeouts.scheduleToStartMs, { kind: 'schedule-to-start', stepKey: key, stepExecutionId });
    }
  }

  async #parallel(branches: readonly (readonly Step[])[], key: string): Promise<Progress> {
    const results: Progress[] = [];
    for (const branch of branches) results.push(await this.#sequence(branch, undefined));
    if (results.includes('failed')) {
      const failed = branches
        .flat()
        .map((b) => this.#s.steps[b.id])
        .find((st) => st?.status === 'failed');
      this.#emit({
        type: 'StepFailed',
        at: this.#at,
        stepKey: key,
        error: failed?.error ?? { code: 'branch_failed', message: `a branch of ${key} failed`, retryable: false },
      });
      return 'failed';
    }
    if (results.every((r) => r === 'done')) {
      this.#emit({ type: 'StepCompleted', at: this.#at, stepKey: key, output: null });
      return 'done';
    }
    return 'blocked';
  }

  async #forEach(step: ForEachStep, key: string): Promise<Progress> {
    const failedItem = this.#s.forEach[key]?.failed;
    if (failedItem !== undefined) {
      const error = this.#s.steps[failedItem]?.error ?? {
        code: 'item_failed',
        message: `${failedItem} failed`,
        retryable: false,
      };
      this.#emit({ type: 'StepFailed', at: this.#at, stepKey: key, error });
      return 'failed';
    }
    if (this.#dispatching) {
      for (const body of step.steps) {
        // Retries of items already in flight first: they hold their slot.
        const fe = this.#s.forEach[key];
        if (fe === undefined) break;
        // Keys first (no entry arrays: this runs per decision over every step in flight).
        const retrying: string[] = [];
        const steps = this.#s.steps;
        for (const k in steps) if (steps[k]?.status === 'retry_ready' && steps[k].stepId === body.id) retrying.push(k);
        if (retrying.length > 1) retrying.sort(compareStepKeys);
        for (const k of retrying) {
          const st = this.#s.steps[k];
          if (st?.status === 'retry_ready')
            await this.#dispatch(body, k, st.attempt + 1, parseStepKey(k).itemIndex, false);
        }
        const first = body === step.steps[0];
        for (;;) {
          const now = this.#s.forEach[key];
          const next = first
            ? now !== undefined && now.entered < now.count
              ? now.entered
              : undefined
            : now?.ready[body.id]?.[0];
          if (now === undefined || next === undefined || (now.inFlight[body.id] ?? 0) >= step.concurrency) break;
          const result = await this.#step(body, next);
          if (result === 'failed') break;
        }
      }
    }
    const fe = this.#s.forEach[key];
    if (fe?.failed !== undefined) return this.#forEach(step, key);
    if (fe !== undefined && fe.done >= fe.count) {
      const last = step.steps[step.steps.length - 1];
      // Finished items left the state: their outputs come from this decision or the step rows.
      const stored = last === undefined ? new Map<string, unknown>() : await this.#ctx.items.finished([last.id]);
      const output = Array.from({ length: fe.count }, (_, i) => {
        if (last === undefined) return null;
        const k = itemKey(last.id, i);
        const st = this.#s.steps[k] ?? this.#retired.get(k);
        return (st === undefined ? stored.get(k) : st.output) ?? null;
      });
      this.#emit({ type: 'StepCompleted', at: this.#at, stepKey: key, output });
      return 'done';
    }
    return 'blocked';
  }

  // ---- compensation -------------------------------------------------------------------

  /** Completed steps that have a compensation, latest completion first. */
  #compensable(): string[] {
    return compensableKeys(this.#s, this.#ctx.plan);
  }

  /** The saga unwinds: for a failed step (the first found), or for the deadline (`timedOut`). */
  async #startCompensation(given?: StepError, timedOut = false): Promise<void> {
    const failedKey = Object.keys(this.#s.steps)
      .filter((k) => this.#s.steps[k]?.status === 'failed')
      .sort(compareStepKeys)[0];
    const failed = failedKey === undefined ? undefined : this.#s.steps[failedKey];
    const reason = given ?? failed?.error ?? { code: 'step_failed', message: 'a step failed', retryable: false };
    const stepKeys = this.#compensable();
    if (stepKeys.length === 0) {
      await this.#conclude({ outcome: timedOut ? 'timed_out' : 'failed', error: reason, compensated: false });
      return;
    }
    this.#emit({ type: 'CompensationStarted', at: this.#at, reason, stepKeys, ...(timedOut ? { timedOut } : {}) });
  }

  /** Runs compensations one at a time, latest-completed step first. */
  async #compensate(): Promise<void> {
    const reason = this.#s.compensation?.reason ?? { code: 'step_failed', message: 'a step failed', retryable: false };
    const outcome = this.#s.compensation?.timedOut === true ? 'timed_out' : 'failed';
    // Recomputed each time so a step that completed late (a parallel branch still in
    // flight when the saga failed) is compensated too.
    for (const key of this.#compensable()) {
      const ck = compensationKey(key);
      const st = this.#s.steps[ck];
      const { stepId, itemIndex } = parseStepKey(key);
      const step = taskStep(this.#ctx.plan, stepId);
      if (step === undefined) continue;
      if (st === undefined) {
        await this.#dispatch(step, ck, 1, itemIndex, true);
        if (this.#s.steps[ck]?.status === 'failed') break;
        return;
      }
      if (st.status === 'completed') continue;
      if (st.status === 'retry_ready') {
        await this.#dispatch(step, ck, st.attempt + 1, itemIndex, true);
        return;
      }
      if (st.status === 'failed') {
        await this.#conclude({
          outcome,
          error: { ...reason, details: { compensationFailed: ck, compensationError: st.error } },
          compensated: false,
        });
        return;
      }
      return; // In flight.
    }
    const failedCompensation = Object.entries(this.#s.steps)
      .filter(([k, st]) => parseStepKey(k).compensation && st.status === 'failed')
      .sort(([a], [b]) => compareStepKeys(a, b))[0];
    if (failedCompensation !== undefined) {
      await this.#conclude({
        outcome,
        error: {
          ...reason,
          details: { compensationFailed: failedCompensation[0], compensationError: failedCompensation[1].error },
        },
        compensated: false,
      });
      return;
    }
    await this.#conclude({ outcome, error: reason, compensated: true });
  }

  // ---- expressions --------------------------------------------------------------------

  /** The scope of a step (see scopeOf): items this decision opened are read before they are stored. */
  #scope(item: number | undefined, stepId?: string): Promise<ExpressionScope> {
    return scopeOf(this.#s, this.#ctx.plan, item, stepId, (forEachKey, index) => {
      const opened = this.#opened.get(forEachKey);
      return opened !== undefined ? Promise.resolve(opened[index]) : this.#ctx.items.get(forEachKey, index);
    });
  }
}
