import { Writable } from 'node:stream';

/** Where commands write: stdout for results, stderr for progress and errors. */
export interface Io {
  readonly out: Writable;
  readonly err: Writable & { isTTY?: boolean };
}

export const processIo: Io = { out: process.stdout, err: process.stderr };

export function printJson(io: Io, value: unknown): void {
  io.out.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLine(io: Io, line = ''): void {
  io.out.write(`${line}\n`);
}

/** Aligned columns under upper-case headers; the last column is not padded. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/**
 * A list as `--json` asks: the items as JSON for scripts, or else a table of `headers` with
 * one row per item for people.
 */
export function printList<T>(
  io: Io,
  json: boolean | undefined,
  items: readonly T[],
  headers: readonly string[],
  row: (item: T) => readonly string[],
): void {
  if (json === true) printJson(io, items);
  else printLine(io, table(headers, items.map(row)));
}

/** `2026-11-29 05:40:01` (UTC), or `-`. */
export function time(value: string | null | undefined): string {
  if (value === null || value === undefined) return '-';
  return new Date(value)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

/** 850ms, 1.2s, 3m04s, 2h05m. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** From `start` to `end` (or now, marked as still going). */
export function span(start: string | null | undefined, end: string | null | undefined, now = Date.now()): string {
  if (start === null || start === undefined) return '-';
  const from = Date.parse(start);
  return end === null || end === undefined ? `${duration(now - from)}…` : duration(Date.parse(end) - from);
}

/** A JSON value on one line, cut at `max` characters. */
export function brief(value: unknown, max = 60): string {
  if (value === null || value === undefined) return '-';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
