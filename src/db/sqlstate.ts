/**
 * A PostgreSQL data exception (SQLSTATE class 22: text with NUL, a number out of range, a
 * malformed date or JSON): the same values fail the same way every time, so retrying the
 * statement cannot help.
 */
export function isDataException(error: unknown): boolean {
  return (
    error instanceof Error &&
    'code' in error &&
    typeof error.code === 'string' &&
    error.code.length === 5 &&
    error.code.startsWith('22')
  );
}
