import { SousError } from '../errors.js';

/**
 * An operator action does not apply to the execution as it stands (a step that is not
 * waiting, a step that does not exist, compensations already undone); nothing changed.
 */
export class ActionRefusedError extends SousError {
  readonly code = 'SOUS_ACTION_REFUSED';
  readonly retryable = false;
}
