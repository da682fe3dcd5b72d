import { SousError } from '../errors.js';

/** No token, an unknown token, or a revoked one. */
export class UnauthenticatedError extends SousError {
  readonly code = 'SOUS_UNAUTHENTICATED';
  readonly retryable = false;
}

/** The token's role does not allow this operation. */
export class ForbiddenError extends SousError {
  readonly code = 'SOUS_FORBIDDEN';
  readonly retryable = false;
}

/** An argument is well-typed but not acceptable (both of two exclusive arguments, a bad cursor...). */
export class InvalidArgumentError extends SousError {
  readonly code = 'SOUS_INVALID_ARGUMENT';
  readonly retryable = false;
}

/** The query would cost more than the server allows. */
export class QueryTooComplexError extends SousError {
  readonly code = 'SOUS_QUERY_TOO_COMPLEX';
  readonly retryable = false;
}

/** A token with this name exists already. */
export class TokenExistsError extends SousError {
  readonly code = 'SOUS_TOKEN_EXISTS';
  readonly retryable = false;
}

/** What a GraphQL error carries in `extensions`. */
export interface ErrorExtensions {
  readonly code: string;
  readonly retryable: boolean;
  readonly issues?: readonly unknown[];
  readonly [key: string]: unknown;
}

/** The extensions of any error a resolver throws: sous errors keep their code; others are internal. */
export function extensionsOf(error: unknown): ErrorExtensions {
  if (error instanceof SousError) {
    const issues = (error as { issues?: unknown }).issues;
    return { code: error.code, retryable: error.retryable, ...(Array.isArray(issues) ? { issues } : {}) };
  }
  return { code: 'SOUS_INTERNAL', retryable: true };
}

/**
 * The HTTP request itself could not be read: a body that is not JSON, an empty body, an
 * unsupported content type. Nothing ran; fix the request and send it again.
 */
export class RequestMalformedError extends SousError {
  readonly code = 'SOUS_REQUEST_MALFORMED';
  readonly retryable = false;
}

/** The request body is larger than the server accepts. */
export class RequestTooLargeError extends SousError {
  readonly code = 'SOUS_REQUEST_TOO_LARGE';
  readonly retryable = false;
}
