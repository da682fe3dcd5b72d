import { SousError } from '../errors.js';

/** A readiness check or a sampled read did not answer in time. */
export class CheckTimeoutError extends SousError {
  readonly code = 'SOUS_CHECK_TIMEOUT';
  readonly retryable = true;
}

/** A readiness check found its dependency not as it must be (e.g. migrations not applied). */
export class CheckFailedError extends SousError {
  readonly code = 'SOUS_CHECK_FAILED';
  readonly retryable = true;
}
