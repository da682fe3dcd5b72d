import type { Logger } from '../logger.js';

/** What a handler knows about the command it runs, and what it can do besides return. */
export interface StepContext {
  readonly executionId: string;
  /** The step's id in the recipe. */
  readonly stepId: string;
  /** This attempt of this step: replies name it. */
  readonly stepExecutionId: string;
  /** Index of the item inside a forEach. */
  readonly itemIndex: number | undefined;
  readonly capability: string;
  /** 1 on the first attempt. */
  readonly attempt: number;
  /** Attempts the step's retry policy allows, when the command says. */
  readonly maxAttempts: number | undefined;
  /** The same on every attempt and redelivery of this step: key side effects by it (see `withExactlyOnce`). */
  readonly idempotencyKey: string;
  /** W3C trace context of the command (Kafka header `traceparent`). */
  readonly traceparent: string | undefined;
  /** Kafka header `sous-correlation-id`. */
  readonly correlationId: string | undefined;
  /** When the attempt must have replied (start-to-close); `signal` aborts then. */
  readonly deadline: Date | undefined;
  /** Longest silence between heartbeats the step allows, when it has a heartbeat timeout. */
  readonly heartbeatTimeoutMs: number | undefined;
  /**
   * Aborted at the command's deadline (reason: DeadlineExceededError) or when the
   * worker stops and its drain timeout has run out (reason: WorkerStoppingError).
   * Long handlers must pass it on or check it.
   */
  readonly signal: AbortSignal;
  /** A child of the worker's logger naming the execution, step and attempt. */
  readonly logger: Logger;
  /**
   * Replies `step.heartbeat` with the given progress, which keeps a step with a
   * heartbeat timeout alive. Never rejects: a heartbeat that cannot be sent is logged
   * (the control plane then sees the same silence as from a stuck handler). Does nothing
   * once the step has replied or deferred its completion.
   */
  heartbeat(progress?: unknown): Promise<void>;
  /**
   * For long commands: the worker will not reply when the handler returns (whatever it
   * returns is ignored), and whoever holds the returned completion token finishes the
   * step later with `createCompletionClient(...).completeStep(token, output)` or
   * `failStep` — from any process. The command is committed when the handler returns.
   */
  deferCompletion(): string;
}
