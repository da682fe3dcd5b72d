import { SousError } from '../errors.js';

/**
 * Thrown by a handler to fail its step with a code. `retryable: true` lets the step's
 * retry policy try again; `false` fails the step for good (and, in a saga, compensates).
 */
export class StepFailure extends SousError {
  readonly code: string;
  readonly retryable: boolean;
  readonly details: unknown;
  constructor(code: string, message: string, options: { retryable: boolean; details?: unknown; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable;
    this.details = options.details;
  }
}

/** A failure worth another attempt (a timeout, a busy dependency). */
export function retryableError(code: string, message: string, details?: unknown): StepFailure {
  return new StepFailure(code, message, { retryable: true, details });
}

/** A failure no retry can fix (a declined card, invalid data). */
export function terminalError(code: string, message: string, details?: unknown): StepFailure {
  return new StepFailure(code, message, { retryable: false, details });
}

/** A worker or capability was configured wrongly; thrown at construction. */
export class WorkerConfigError extends SousError {
  readonly code = 'SOUS_WORKER_CONFIG_INVALID';
  readonly retryable = false;
}

/** A command record that is not a valid sous step command. */
export class CommandInvalidError extends SousError {
  readonly code = 'SOUS_COMMAND_INVALID';
  readonly retryable = false;
}

/** A step's input failed the capability's input schema. */
export class InputInvalidError extends SousError {
  readonly code = 'input_invalid';
  readonly retryable = false;
}

/** The handler's output failed the capability's output schema. */
export class OutputInvalidError extends SousError {
  readonly code = 'output_invalid';
  readonly retryable = false;
}

/** The command's input is held by reference and no payload store can fetch it. */
export class PayloadUnavailableError extends SousError {
  readonly code = 'payload_unavailable';
  readonly retryable = false;
}

/** An output over the inline limit could not be stored by the payload store: the attempt fails, retryable. */
export class OutputNotStoredError extends SousError {
  readonly code = 'output_not_stored';
  readonly retryable = true;
}

/** The reason of `ctx.signal` when the control plane cancelled the step (its execution, or its deadline). */
export class StepCancelledError extends SousError {
  readonly code = 'SOUS_STEP_CANCELLED';
  readonly retryable = false;
}
