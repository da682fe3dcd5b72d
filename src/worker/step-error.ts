import { SousError } from '../errors.js';
import type { StepError } from '../protocol/messages.js';
import { DeadlineExceededError, StepFailure } from './errors.js';
import { jsonText } from './json-text.js';

/** Details travel as JSON: a value that cannot be serialised is replaced by its description. */
function jsonSafe(details: unknown): unknown {
  try {
    const text = jsonText(details);
    return text === undefined ? null : (JSON.parse(text) as unknown);
  } catch {
    return { unserialisable: String(details) };
  }
}

/**
 * The error a failed step replies, from what its handler threw: a StepFailure keeps its
 * code, retryability and details; a sous error keeps its code; anything else is a
 * retryable `unhandled_error` with the error's name and stack in the details, unless it
 * was thrown after the deadline aborted the handler (then `deadline_exceeded`).
 */
export function stepErrorOf(error: unknown, abortReason?: unknown): StepError {
  if (error instanceof StepFailure) {
    return {
      code: error.code,
      message: error.message,
      retryable: error.retryable,
      ...(error.details === undefined ? {} : { details: jsonSafe(error.details) }),
    };
  }
  if (abortReason instanceof DeadlineExceededError) {
    return { code: abortReason.code, message: abortReason.message, retryable: abortReason.retryable };
  }
  if (error instanceof SousError) return { code: error.code, message: error.message, retryable: error.retryable };
  if (error instanceof Error) {
    return {
      code: 'unhandled_error',
      message: error.message,
      retryable: true,
      details: { name: error.name, stack: error.stack ?? null },
    };
  }
  return { code: 'unhandled_error', message: String(error), retryable: true, details: { thrown: jsonSafe(error) } };
}
