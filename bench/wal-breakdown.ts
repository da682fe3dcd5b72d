import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { StackConfig } from '../src/stack/config.js';
import { postgresPaths } from '../src/stack/postgres.js';
import type { Probe } from './probe.js';

/** WAL of one table (or index) and record kind, per step. */
export interface WalShare {
  readonly relation: string;
  readonly record: string;
  readonly bytesPerStep: number;
  readonly recordsPerStep: number;
}

/** A WAL position as PostgreSQL writes it (`hi/lo`), from bytes since 0/0. */
function lsnOf(bytes: number): string {
  const hi = Math.floor(bytes / 2 ** 32);
  const lo = bytes - hi * 2 ** 32;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

const RECORD = /len \(rec\/tot\):\s*(\d+)\/\s*(\d+),.*desc: ([A-Z0-9_+]+)/;
const RELATION = /rel \d+\/\d+\/(\d+)/;

/**
 * Where a window's WAL went, by relation and record kind (pg_waldump over the window, the
 * relation's name from pg_class): what to cut next when the WAL per step is too high.
 * Undefined when pg_waldump is not there or the WAL of the window was recycled.
 */
export async function walBreakdown(
  config: StackConfig,
  probe: Probe,
  fromBytes: number,
  toBytes: number,
  steps: number,
  top = 14,
): Promise<WalShare[] | undefined> {
  const { bindir, dataDir } = postgresPaths(config);
  const waldump = join(bindir, 'pg_waldump');
  if (!existsSync(waldump)) return undefined;
  // Streamed line by line: a long workload's window dumps to more than a string can hold.
  const run = spawn(waldump, ['-p', join(dataDir, 'pg_wal'), '-s', lsnOf(fromBytes), '-e', lsnOf(toBytes)], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const exited = once(run, 'close');
  const totals = new Map<string, { bytes: number; records: number; node: string; record: string }>();
  let lines = 0;
  for await (const line of createInterface({ input: run.stdout, crlfDelay: Infinity })) {
    const m = RECORD.exec(line);
    if (m === null) continue;
    lines++;
    const [, recordSize, totalSize, record = '?'] = m;
    const node = RELATION.exec(line)?.[1] ?? '-';
    const add = (kind: string, bytes: number) => {
      const key = `${node} ${kind}`;
      const t = totals.get(key) ?? { bytes: 0, records: 0, node, record: kind };
      t.bytes += bytes;
      t.records++;
      totals.set(key, t);
    };
    add(record, Number(recordSize));
    // A full-page image (the first change of a page after a checkpoint) is counted apart:
    // it depends on when checkpoints fall and which old pages have free space, not on
    // what a step writes.
    const image = Number(totalSize) - Number(recordSize);
    if (image > 0) add('full-page images', image);
  }
  const [code] = (await exited) as [number | null];
  if (code !== 0 && lines === 0) return undefined;
  const nodes = [...new Set([...totals.values()].map((t) => t.node).filter((n) => n !== '-'))];
  const names = new Map(
    (
      await probe.query<{ node: string; name: string }>(
        `SELECT relfilenode::text AS node, relname AS name FROM pg_class WHERE relfilenode = ANY($1::oid[])`,
        [nodes],
      )
    ).map((r) => [r.node, r.name]),
  );
  return [...totals.values()]
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, top)
    .map((t) => ({
      relation: t.node === '-' ? '(none)' : (names.get(t.node) ?? `relfilenode ${t.node}`),
      record: t.record,
      bytesPerStep: t.bytes / steps,
      recordsPerStep: t.records / steps,
    }));
}
