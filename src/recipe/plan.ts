import type { ContractRange } from '../protocol/shards.js';
/*
 * The recipe plan: the validated, serialisable form both the YAML format and the
 * TypeScript builder produce, stored as JSON when a version is registered and read by
 * the engine. Every default is filled in and every duration is in milliseconds, so two
 * plans that mean the same thing are the same JSON (and have the same checksum).
 *
 * Expressions are JSONata source text, evaluated against an ExpressionScope.
 */

/** JSONata source text. */
export type Expression = string;

/**
 * How a step's input is built: one expression producing the whole value, or an object
 * whose values are each an expression.
 */
export type InputMapping =
  { readonly expression: Expression } | { readonly fields: Readonly<Record<string, Expression>> };

/** What expressions can see. */
export interface ExpressionScope {
  /** The execution's input. */
  readonly input: unknown;
  /** Outputs of completed steps, by output name. */
  readonly outputs: Readonly<Record<string, unknown>>;
  /** Inside a forEach: the current item and its index. */
  readonly item?: unknown;
  readonly index?: number;
  readonly execution: { readonly id: string; readonly recipe: string; readonly version: number };
  /**
   * In `onFailure` and `finally` steps only: the error the execution failed (or timed
   * out) with, `null` after a completed execution.
   */
  readonly failure?: { readonly code: string; readonly message: string; readonly details?: unknown } | null;
  /** In `onFailure` and `finally` steps only: how the execution ended (completed, failed, timed_out). */
  readonly outcome?: 'completed' | 'failed' | 'timed_out';
}

export interface RetryPolicy {
  /** Attempts in all, the first included. @default 3 */
  readonly maxAttempts: number;
  /** Wait before the second attempt. @default 1000 */
  readonly initialIntervalMs: number;
  /** Each wait is the previous one times this. @default 2 */
  readonly backoffCoefficient: number;
  /** Longest wait. @default 60000 */
  readonly maxIntervalMs: number;
  /** Each wait varies randomly by up to this fraction, either way. @default 0.2 */
  readonly jitter: number;
  /** Error codes never retried. @default [] */
  readonly nonRetryableErrorCodes: readonly string[];
}

export interface Timeouts {
  /** From dispatch until a worker starts it. */
  readonly scheduleToStartMs?: number;
  /** From start until a reply; one attempt. */
  readonly startToCloseMs?: number;
  /** Longest silence between heartbeats of a running attempt. */
  readonly heartbeatMs?: number;
}

interface StepBase {
  /** Unique within the recipe (forEach bodies and parallel branches included). /^[A-Za-z][A-Za-z0-9_-]*$/ */
  readonly id: string;
  /** The step runs only when this is truthy; otherwise it is skipped. */
  readonly when?: Expression;
  /** Data-residency constraint: the region whose workers must run it. */
  readonly region?: string;
}

export interface TaskStep extends StepBase {
  readonly type: 'task';
  /** Logical operation, e.g. `payments.charge`: commands go to `sous.cmd.<capability>`. */
  readonly capability: string;
  /** Contract versions of the capability it accepts; its commands reach only shards of one of them. */
  readonly contract?: ContractRange;
  readonly input?: InputMapping;
  /** Name under which the output is visible to later expressions. @default the step id */
  readonly output: string;
  readonly retry: RetryPolicy;
  readonly timeouts: Timeouts;
  /** Undoes this step when a later step fails the saga; run in reverse completion order. */
  readonly compensate?: { readonly capability: string; readonly input?: InputMapping };
}

export interface ParallelStep extends StepBase {
  readonly type: 'parallel';
  /** Each branch is a sequence; the step completes when all branches complete. */
  readonly branches: readonly (readonly Step[])[];
}

export interface ForEachStep extends StepBase {
  readonly type: 'forEach';
  /** Must evaluate to an array. */
  readonly items: Expression;
  /** Items in flight per body step at once. @default 10 */
  readonly concurrency: number;
  /** Run for each item in order; only task steps. */
  readonly steps: readonly TaskStep[];
  /** Name of the array of each item's last output. @default the step id */
  readonly output: string;
}

export interface SubRecipeStep extends StepBase {
  readonly type: 'subRecipe';
  readonly recipe: string;
  /** @default the latest version when the execution started (when the step starts, for sub-recipes registered after) */
  readonly version?: number;
  readonly input?: InputMapping;
  /** @default the step id */
  readonly output: string;
}

export interface SleepStep extends StepBase {
  readonly type: 'sleep';
  /** Exactly one of durationMs and until. */
  readonly durationMs?: number;
  /** Must evaluate to an ISO-8601 timestamp. */
  readonly until?: Expression;
}

export interface WaitForSignalStep extends StepBase {
  readonly type: 'waitForSignal';
  readonly signal: string;
  readonly timeoutMs?: number;
  /** What a timeout does. @default 'fail' */
  readonly onTimeout: 'fail' | 'continue';
  /** Name of the signal's payload. @default the step id */
  readonly output: string;
}

export type Step = TaskStep | ParallelStep | ForEachStep | SubRecipeStep | SleepStep | WaitForSignalStep;

/**
 * How long finished executions of a recipe are kept: purged `maxAgeMs` after they
 * finished, or never. The latest registered version of a recipe decides for the
 * executions of all its versions (a retention is a property of the recipe's history, and
 * a new version that shortens it must shorten it for what came before too).
 */
export type Retention = 'forever' | { readonly maxAgeMs: number };

export interface RecipePlan {
  /** /^[a-z][a-z0-9._-]*$/ */
  readonly name: string;
  readonly description?: string;
  readonly steps: readonly Step[];
  /** The execution's output. @default all outputs, by name */
  readonly output?: Expression;
  /**
   * Steps run after a failed or timed-out execution, once its compensations ran, in order;
   * their scope has `failure`. One failing does not stop the next, nor hide the failure.
   */
  readonly onFailure?: readonly TaskStep[];
  /** Steps run after every finished execution (completed, failed, timed out), after `onFailure`. */
  readonly finally?: readonly TaskStep[];
  /**
   * Longest an execution may run: then its steps in flight are cancelled, its
   * compensations run, and it ends `timed_out`. A start may give its own. @default none
   */
  readonly deadlineMs?: number;
  /** @default the control plane's retention (option `retention`, SOUS_RETENTION) */
  readonly retention?: Retention;
}
