import type { ContractRange } from '../protocol/shards.js';
import type { StepError } from '../protocol/messages.js';
import type { Timeouts } from '../recipe/plan.js';

/*
 * The execution event log. Every change to an execution is one of these, appended in
 * order; `evolve` folds them into ExecutionState and the state tables are projections
 * of them. Events carry everything needed to replay them (ids, inputs, times, the
 * random jitter already applied), so replay needs no I/O.
 */

/** Why a timer exists; a fired timer whose purpose is gone is ignored. */
export type TimerPurpose =
  | { readonly kind: 'retry'; readonly stepKey: string }
  | { readonly kind: 'sleep'; readonly stepKey: string }
  | { readonly kind: 'signal-timeout'; readonly stepKey: string }
  | {
      readonly kind: 'schedule-to-start' | 'start-to-close' | 'heartbeat';
      readonly stepKey: string;
      readonly stepExecutionId: string;
    }
  /** The execution's deadline: when it fires, steps in flight are cancelled and the saga unwinds. */
  | { readonly kind: 'deadline' };

/** How a finished execution ended, as its onFailure and finally steps see it. */
export interface Finishing {
  readonly outcome: 'completed' | 'failed' | 'timed_out';
  /** The execution's output (completed). */
  readonly output?: unknown;
  /** The failure it ends with (failed, timed_out). */
  readonly error?: StepError;
  /** Whether every compensation completed (failed, timed_out). */
  readonly compensated?: boolean;
}

/** An onFailure or finally step that failed for good: recorded beside the execution's own outcome. */
export interface HandlerFailure {
  readonly stepKey: string;
  readonly error: StepError;
}

/**
 * Set on an attempt's completion, failure or dead-lettering when no StepStarted came
 * before it: the worker's final reply is then the only record of who began the attempt
 * and when (a short command gets no separate `step.started`). Optional: events stored
 * before replies carried it replay as they did.
 */
interface StartOfAttempt {
  /** When the worker began the attempt (its clock, at most `at`). */
  readonly startedAt?: string;
  readonly workerId?: string;
}

interface Base {
  /** ISO-8601 time the decision was taken. */
  readonly at: string;
}

export type EngineEvent =
  | (Base & {
      readonly type: 'ExecutionStarted';
      readonly executionId: string;
      readonly recipe: string;
      readonly version: number;
      readonly input: unknown;
      readonly idempotencyKey?: string;
      readonly parent?: { readonly executionId: string; readonly stepKey: string };
      /** Versions of the sub-recipes its steps name without one, fixed at start (absent before pinning). */
      readonly subRecipeVersions?: Readonly<Record<string, number>>;
      /** When the execution times out (its recipe's or its start's deadline); absent: never. */
      readonly deadlineAt?: string;
    })
  | (Base & {
      readonly type: 'StepScheduled';
      readonly stepKey: string;
      readonly stepId: string;
      readonly itemIndex?: number;
      readonly stepExecutionId: string;
      readonly attempt: number;
      readonly capability: string;
      readonly input: unknown;
      readonly region?: string;
      /** Contract versions it accepts (absent: any). */
      readonly contract?: ContractRange;
      readonly timeouts: Timeouts;
      /** Attempts the retry policy allows. */
      readonly maxAttempts?: number;
      /** A compensation of the step `stepKey` names (without the suffix). */
      readonly compensation?: boolean;
    })
  | (Base & {
      readonly type: 'StepStarted';
      readonly stepKey: string;
      readonly stepExecutionId: string;
      readonly workerId: string;
      /** When the worker began (at most `at`); absent from older workers and older events: then `at`. */
      readonly startedAt?: string;
    })
  | (Base & {
      readonly type: 'StepHeartbeat';
      readonly stepKey: string;
      readonly stepExecutionId: string;
      readonly progress?: unknown;
    })
  | (Base & {
      readonly type: 'StepCompleted';
      readonly stepKey: string;
      readonly stepExecutionId?: string;
      readonly output: unknown;
      /** Set when an operator supplied the output instead of a worker. */
      readonly skippedByOperator?: boolean;
      /** The attempt in flight the operator's skip abandons. */
      readonly abandonedStepExecutionId?: string;
    } & StartOfAttempt)
  | (Base & {
      readonly type: 'StepFailed';
      readonly stepKey: string;
      readonly stepExecutionId?: string;
      readonly error: StepError;
      /** When set, the step waits for a retry at this time; otherwise it failed for good. */
      readonly retryAt?: string;
    } & StartOfAttempt)
  | (Base & { readonly type: 'StepSkipped'; readonly stepKey: string; readonly reason: 'condition' })
  /** A step in flight or waiting was stopped (the execution's deadline passed): late replies are ignored. */
  | (Base & {
      readonly type: 'StepCancelled';
      readonly stepKey: string;
      /** The attempt in flight it abandons, for a task step. */
      readonly stepExecutionId?: string;
      readonly reason: StepError;
    })
  /** A container (parallel, forEach, sleep, waitForSignal, subRecipe) began. */
  | (Base & {
      readonly type: 'StepOpened';
      readonly stepKey: string;
      readonly stepId: string;
      readonly kind: 'parallel' | 'forEach' | 'sleep' | 'waitForSignal' | 'subRecipe';
      /** For a forEach: how many items. The items themselves are stored apart (sous.foreach_item). */
      readonly itemCount?: number;
      readonly childExecutionId?: string;
    })
  | (Base & {
      readonly type: 'StepRetryReady';
      readonly stepKey: string;
      /** An operator asked for the retry. */
      readonly byOperator?: boolean;
      /** The attempt in flight the operator's retry abandons (its replies become stale). */
      readonly abandonedStepExecutionId?: string;
    })
  /** The worker dead-lettered the attempt's command: the step waits for an operator. */
  | (Base & {
      readonly type: 'StepDeadLettered';
      readonly stepKey: string;
      readonly stepExecutionId: string;
      readonly error: StepError;
    } & StartOfAttempt)
  /** The dead-lettered command was published again: the attempt is back in flight. */
  | (Base & { readonly type: 'StepRequeued'; readonly stepKey: string; readonly stepExecutionId: string })
  /** An operator reran the execution from a top-level step: these step states are forgotten. */
  | (Base & {
      readonly type: 'ExecutionRewound';
      readonly fromStepId: string;
      readonly removedStepKeys: readonly string[];
    })
  | (Base & {
      readonly type: 'TimerScheduled';
      readonly timerId: string;
      readonly fireAt: string;
      readonly purpose: TimerPurpose;
    })
  | (Base & { readonly type: 'TimerCleared'; readonly timerId: string })
  | (Base & { readonly type: 'SignalReceived'; readonly name: string; readonly payload: unknown })
  | (Base & { readonly type: 'SignalConsumed'; readonly name: string; readonly stepKey: string })
  | (Base & {
      readonly type: 'ChildExecutionRequested';
      readonly stepKey: string;
      readonly childExecutionId: string;
      readonly recipe: string;
      readonly version?: number;
      readonly input: unknown;
    })
  | (Base & {
      readonly type: 'CompensationStarted';
      readonly reason: StepError;
      readonly stepKeys: readonly string[];
      /** The deadline passed: the execution ends `timed_out`, not `failed`. */
      readonly timedOut?: boolean;
    })
  /** The execution is over; its onFailure and finally steps run before it ends as `finishing` says. */
  | (Base & { readonly type: 'FinishingStarted'; readonly finishing: Finishing })
  | (Base & { readonly type: 'ExecutionPaused' })
  | (Base & { readonly type: 'ExecutionResumed' })
  | (Base & {
      readonly type: 'ExecutionCompleted';
      readonly output: unknown;
      readonly handlerFailures?: readonly HandlerFailure[];
    })
  | (Base & {
      readonly type: 'ExecutionFailed';
      readonly error: StepError;
      readonly compensated: boolean;
      /** Its deadline passed: the execution is `timed_out`. */
      readonly timedOut?: boolean;
      /** onFailure or finally steps that failed; `error` stays the execution's own. */
      readonly handlerFailures?: readonly HandlerFailure[];
    })
  | (Base & { readonly type: 'ExecutionCancelled'; readonly reason?: string });

export type EngineEventType = EngineEvent['type'];
