import { InvalidArgumentError } from './errors.js';

/*
 * Cursor paging shared by the API's connections (executions, the audit log): opaque
 * cursors, page sizes and time bounds checked the same way, each refusal naming its
 * argument.
 */

/** The largest page any connection gives. */
export const MAX_PAGE = 500;

/** `first` as given, or InvalidArgumentError naming it. */
export function pageSize(first: number, argument = 'first'): number {
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) {
    throw new InvalidArgumentError(`${argument} must be between 1 and ${MAX_PAGE}, got ${first}`);
  }
  return first;
}

/** An opaque cursor for a row's sort key. */
export function encodeCursor(key: Readonly<Record<string, string>>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/**
 * The sort key in a cursor `encodeCursor` gave out; `read` checks its shape (undefined:
 * not ours). Anything else is InvalidArgumentError naming the argument.
 */
export function decodeCursor<K>(
  cursor: string,
  read: (value: Record<string, unknown>) => K | undefined,
  argument = 'after',
): K {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    const key = typeof value === 'object' && value !== null ? read(value as Record<string, unknown>) : undefined;
    if (key !== undefined) return key;
  } catch {
    // Falls through to the error below.
  }
  throw new InvalidArgumentError(`${argument}: "${cursor}" is not a cursor this API gave out`);
}

/** An ISO-8601 time argument, or null when absent; InvalidArgumentError naming it otherwise. */
export function isoTime(argument: string, value: string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (Number.isNaN(Date.parse(value)))
    throw new InvalidArgumentError(`${argument}: "${value}" is not an ISO-8601 time`);
  return value;
}

/** A connection from one row more than a page (the extra row says there is a next page). */
export function connection<N>(rows: readonly N[], first: number, cursorOf: (node: N) => string) {
  const edges = rows.slice(0, first).map((node) => ({ cursor: cursorOf(node), node }));
  return { edges, pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null } };
}
