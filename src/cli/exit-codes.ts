/**
 * What the sous CLI's exit status means; scripts branch on it (README: "The sous CLI").
 * - 0 OK: the command did what it says.
 * - 1 REFUSED: the operation was refused or failed (unknown execution, an action the
 *   execution's state does not allow, a dead letter that cannot be reprocessed, a DLT job
 *   that ended with failed letters, an execution `start --wait` saw fail, a stack command
 *   that failed).
 * - 2 USAGE: the command line is wrong (unknown command or option, missing argument, a
 *   value that is not JSON or not a number, an unreadable file) or the API says an
 *   argument is invalid. Nothing was changed.
 * - 3 UNREACHABLE: the CLI cannot talk to the API as this caller: the API or the database
 *   is unreachable, no token is configured, the token is unknown or revoked, or its role
 *   is too low for the operation.
 */
export const EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3 } as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error the CLI reports in one line (plus what to do) and exits with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  /** The machine-readable code (the API's `extensions.code`, or the CLI's own). */
  readonly code: string;
  constructor(exitCode: ExitCode, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.code = code;
  }
}

/** Exit status of an error code the API returns. */
export function exitCodeOf(apiCode: string): ExitCode {
  switch (apiCode) {
    case 'SOUS_UNAUTHENTICATED':
    case 'SOUS_FORBIDDEN':
      return EXIT.unreachable;
    case 'SOUS_INVALID_ARGUMENT':
    case 'SOUS_GRAPHQL_INVALID':
      return EXIT.usage;
    default:
      return EXIT.refused;
  }
}
