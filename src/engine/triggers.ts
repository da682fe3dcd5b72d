import type { StepError } from '../protocol/messages.js';

/**
 * Who began an attempt and when, as a final reply tells it. A worker sends no separate
 * `step.started` for a short command, so its completion or failure is the only record
 * of the start. Absent when the attempt was finished from elsewhere (completion client).
 */
export interface AttemptStart {
  readonly startedAt?: string;
  readonly workerId?: string;
}

/** What makes the engine decide: a message, a timer, or a person's request. */
export type Trigger =
  | {
      readonly kind: 'start';
      readonly executionId: string;
      readonly recipe: string;
      readonly version: number;
      readonly input: unknown;
      readonly idempotencyKey?: string;
      readonly parent?: { readonly executionId: string; readonly stepKey: string };
      /**
       * The latest version of each sub-recipe its steps name without a version, read when
       * it starts: those steps start that version whatever is registered later.
       */
      readonly subRecipeVersions?: Readonly<Record<string, number>>;
      /** This start's deadline, from now, instead of the recipe's. @default the recipe's `deadlineMs` */
      readonly deadlineMs?: number;
    }
  | {
      readonly kind: 'step.started';
      readonly stepExecutionId: string;
      readonly workerId: string;
      /** When the worker began the attempt (its clock); absent from older workers. */
      readonly startedAt?: string;
    }
  | { readonly kind: 'step.heartbeat'; readonly stepExecutionId: string; readonly progress?: unknown }
  | ({ readonly kind: 'step.completed'; readonly stepExecutionId: string; readonly output: unknown } & AttemptStart)
  | ({
      readonly kind: 'step.failed';
      readonly stepExecutionId: string;
      readonly error: StepError;
      /** The worker kept the command in its dead-letter topic: the step waits for an operator. */
      readonly deadLettered?: boolean;
    } & AttemptStart)
  | { readonly kind: 'timer'; readonly timerId: string }
  | { readonly kind: 'signal'; readonly name: string; readonly payload: unknown }
  | {
      readonly kind: 'child.finished';
      readonly childExecutionId: string;
      readonly status: 'completed' | 'failed' | 'cancelled';
      readonly output?: unknown;
      readonly error?: StepError;
    }
  | { readonly kind: 'cancel'; readonly reason?: string }
  | { readonly kind: 'pause' }
  | { readonly kind: 'resume' }
  /** Operator: a new attempt of a task step now (abandoning one in flight or waiting). */
  | { readonly kind: 'retryStep'; readonly stepKey: string }
  /** Operator: the step counts as completed with this output. */
  | { readonly kind: 'skipStep'; readonly stepKey: string; readonly output: unknown }
  /** Operator: forget a top-level step and everything after it, and run again from there. */
  | { readonly kind: 'rerunFromStep'; readonly stepId: string }
  /** A dead-lettered attempt's command was published again (dead-letter reprocessing). */
  | { readonly kind: 'requeue'; readonly stepExecutionId: string };
