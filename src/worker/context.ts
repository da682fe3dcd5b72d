import type { Logger } from '../logger.js';

/** What a handler knows about the command it runs, and what it can do besides return. */
export interface StepContext {
  readonly executionId: string;
  readonly stepId: string;
  readonly stepExecutionId: string;
  readonly itemIndex: number | undefined;
  /** 1 on the first attempt. */
  readonly attempt: number;
  /** The same on every attempt and redelivery of this step: key side effects by it. */
  readonly idempotencyKey: string;
  readonly traceparent: string | undefined;
  readonly correlationId: string | undefined;
  /**
   * Aborted at the command's deadline, when the control plane cancels the step (its
   * execution cancelled, or its deadline passed: the reason is a StepCancelledError), or
   * when the worker stops past its drain timeout. A reply after a cancel changes nothing.
   */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** Reports progress; keeps a step with a heartbeat timeout alive. */
  heartbeat(progress?: unknown): Promise<void>;
  /**
   * For long commands: the handler returns without a result, and whoever holds the
   * returned token completes the step later (`createCompletionClient`), from any process.
   */
  deferCompletion(): string;
}
