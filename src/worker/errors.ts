import { ConfigInvalidError, SousError } from '../errors.js';

/**
 * Thrown by a handler to fail its step with a code. `retryable: true` lets the step's
 * retry policy try again (a new attempt, dispatched by the control plane); `false` fails
 * the step for good (and, in a saga, compensates).
 */
export class StepFailure extends SousError {
  readonly code: string;
  readonly retryable: boolean;
  /** JSON-serialisable facts for whoever investigates; travels in the reply. */
  readonly details: unknown;
  constructor(code: string, message: string, options: { retryable: boolean; details?: unknown; cause?: unknown }) {
    super(message, { cause: options.cause });
    if (code.length === 0) throw new TypeError('StepFailure needs a non-empty code');
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

/** A worker, capability or completion client was configured wrongly; thrown at construction. */
export class WorkerConfigError extends ConfigInvalidError {}

/** A command record that is not a valid sous step command (a poison record: it goes to the DLT). */
export class CommandInvalidError extends SousError {
  readonly code = 'SOUS_COMMAND_INVALID';
  readonly retryable = false;
}

/** A step's input failed the capability's input schema. */
export class InputInvalidError extends SousError {
  readonly code = 'input_invalid';
  readonly retryable = false;
}

/** The handler's output failed the capability's output schema, or cannot travel as JSON. */
export class OutputInvalidError extends SousError {
  readonly code = 'output_invalid';
  readonly retryable = false;
}

/** The handler's output is larger than a reply may be (`maxReplyBytes`). */
export class OutputTooLargeError extends SousError {
  readonly code = 'output_too_large';
  readonly retryable = false;
}

/** The command's input is held by reference and no payload store can fetch it. */
export class PayloadUnavailableError extends SousError {
  readonly code = 'payload_unavailable';
  readonly retryable = false;
}

/** The command names a region other than the worker's (data residency). */
export class RegionMismatchError extends SousError {
  readonly code = 'region_mismatch';
  readonly retryable = false;
}

/** The command's deadline passed: the reason `ctx.signal` is aborted with, and the code replied. */
export class DeadlineExceededError extends SousError {
  readonly code = 'deadline_exceeded';
  readonly retryable = true;
}

/**
 * The worker is stopping and its drain timeout ran out: the reason `ctx.signal` is
 * aborted with. A handler that gives up on it gets no reply; the command is not
 * committed and goes to another instance.
 */
export class WorkerStoppingError extends SousError {
  readonly code = 'worker_stopping';
  readonly retryable = true;
}

/**
 * The step's last allowed attempt (`maxAttempts`) failed with a retryable error: the step
 * fails and the command goes to the DLT. The class name is the DLT error-class header.
 */
export class RetriesExhausted extends SousError {
  readonly code: string;
  readonly retryable = false;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** A completion token that was not issued by the control plane, or was damaged on the way. */
export class CompletionTokenInvalidError extends SousError {
  readonly code = 'SOUS_COMPLETION_TOKEN_INVALID';
  readonly retryable = false;
}
