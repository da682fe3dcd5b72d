import type { StepError } from '../protocol/messages.js';
import type { Finishing, HandlerFailure, TimerPurpose } from './events.js';

export type ExecutionStatus =
  | 'running'
  | 'paused'
  | 'compensating'
  | 'completed'
  | 'failed'
  | 'cancelled'
  /** Its deadline passed: steps in flight were cancelled and its compensations ran. */
  | 'timed_out';

export const TERMINAL_STATUSES: readonly ExecutionStatus[] = ['completed', 'failed', 'cancelled', 'timed_out'];

export type StepStatus =
  /** A command is in the outbox / on Kafka, not yet taken by a worker. */
  | 'scheduled'
  | 'running'
  /** Failed, a retry timer is set. */
  | 'retry_wait'
  /** The retry timer fired; dispatched again when the execution runs. */
  | 'retry_ready'
  /** The worker dead-lettered the command: waits for an operator (reprocess, retry, skip). */
  | 'dead_lettered'
  /** A container or wait in progress (parallel, forEach, sleep, signal, sub-recipe). */
  | 'open'
  | 'completed'
  | 'skipped'
  | 'failed'
  /** Stopped while in flight or waiting (the execution's deadline passed). */
  | 'cancelled';

export interface StepState {
  readonly stepId: string;
  readonly status: StepStatus;
  /** Attempts made so far. */
  readonly attempt: number;
  readonly stepExecutionId?: string;
  readonly output?: unknown;
  readonly error?: StepError;
  /** Order in which steps completed, for reverse-order compensation. */
  readonly completionSeq?: number;
  readonly lastHeartbeatAt?: string;
  readonly childExecutionId?: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** When it completed, was skipped or failed for good. */
  readonly finishedAt?: string;
}

/**
 * A forEach's buckets: per body step, the item indices waiting for it and how many are
 * in flight. An item moves to the next step's bucket as soon as it leaves one, so a fast
 * step keeps working while a slow one drains its own bucket. Items enter the first body
 * step in index order, so that bucket is a cursor (`entered`), not a list: the state
 * stays small however long the list. An item that leaves the last body step leaves the
 * state too (see `evolve`): its step rows keep its outputs.
 */
export interface ForEachState {
  /** How many items; their data is stored apart and read through the decision's ItemSource. */
  readonly count: number;
  /** Items [0, entered) have entered the first body step; the others wait for it. */
  readonly entered: number;
  /** Per body step after the first, items waiting for it (the first step's list stays empty). */
  readonly ready: Readonly<Record<string, readonly number[]>>;
  readonly inFlight: Readonly<Record<string, number>>;
  readonly done: number;
  /** Key of the first item step that failed for good. */
  readonly failed?: string;
}

export interface ExecutionState {
  readonly executionId: string;
  readonly recipe: string;
  readonly version: number;
  readonly status: ExecutionStatus;
  readonly input: unknown;
  readonly idempotencyKey?: string;
  readonly parent?: { readonly executionId: string; readonly stepKey: string };
  /** Versions of the sub-recipes named without one, fixed at start. */
  readonly subRecipeVersions?: Readonly<Record<string, number>>;
  /** Step states by step key: the step id, `<id>[<item index>]` inside a forEach, `<key>~compensate`. */
  readonly steps: Readonly<Record<string, StepState>>;
  /** stepExecutionId of each attempt in flight → step key. */
  readonly attempts: Readonly<Record<string, string>>;
  readonly forEach: Readonly<Record<string, ForEachState>>;
  readonly timers: Readonly<Record<string, TimerPurpose & { readonly fireAt: string }>>;
  /** Signals received before a step waited for them, oldest first. */
  readonly signals: Readonly<Record<string, readonly unknown[]>>;
  readonly completions: number;
  readonly compensation?: {
    readonly reason: StepError;
    readonly queue: readonly string[];
    /** The deadline passed: the execution ends `timed_out`. */
    readonly timedOut?: boolean;
  };
  /** When the execution times out; absent: never. */
  readonly deadlineAt?: string;
  /** Set while its onFailure and finally steps run: how the execution ends once they did. */
  readonly finishing?: Finishing;
  /** onFailure or finally steps that failed for good (the execution's outcome is its own). */
  readonly handlerFailures?: readonly HandlerFailure[];
  readonly output?: unknown;
  readonly error?: StepError;
  readonly createdAt: string;
  readonly updatedAt: string;
}
