import { SousError } from '../errors.js';

/** No execution has this id. */
export class ExecutionNotFoundError extends SousError {
  readonly code = 'SOUS_EXECUTION_NOT_FOUND';
  readonly retryable = false;
}

/** The execution already completed, failed or was cancelled: the action cannot apply. */
export class ExecutionFinishedError extends SousError {
  readonly code = 'SOUS_EXECUTION_FINISHED';
  readonly retryable = false;
}

/** A start the control plane refuses as asked (e.g. too many executions in one call). */
export class InvalidStartError extends SousError {
  readonly code = 'SOUS_INVALID_START';
  readonly retryable = false;
}

/** No recipe (or no such version of it) is registered. */
export class RecipeNotFoundError extends SousError {
  readonly code = 'SOUS_RECIPE_NOT_FOUND';
  readonly retryable = false;
}

/** A reply or control message on the reply topic that does not validate. */
export class ReplyInvalidError extends SousError {
  readonly code = 'SOUS_REPLY_INVALID';
  readonly retryable = false;
}

/** PostgreSQL refused a value of the reply (a data exception, SQLSTATE class 22): retrying cannot help. */
export class ReplyNotStorableError extends SousError {
  readonly code = 'SOUS_REPLY_NOT_STORABLE';
  readonly retryable = false;
}

/** No live shard has this id (it never announced itself, said goodbye, or fell silent). */
export class ShardNotFoundError extends SousError {
  readonly code = 'SOUS_SHARD_NOT_FOUND';
  readonly retryable = false;
}

/** A record of the region inbox that this region must not act on (not a command, another region's, no reply route). */
export class InboundRefusedError extends SousError {
  readonly code = 'SOUS_INBOUND_REFUSED';
  readonly retryable = false;
}
