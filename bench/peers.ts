// npm run bench:peers — the best PostgreSQL-only peer (pg-boss 12, "complete job i + send job
// i+1" in one transaction, batch 10: 1,500–1,700 steps/s in issue 10 and the peers' README) run
// on the same machine, by default against the same PostgreSQL as sous (the stack's cluster, as
// its superuser), then its figures beside sous's latest `npm run bench` of each workload (.cache/bench/latest/).
//
// The harness is /work/shared/bench-peers (BENCH_PEERS_DIR); the shared copy is read-only, so
// it is copied to .cache/bench/peers and its packages installed there (npm ci) once.
// BENCH_PEERS_ARGS adds flags (e.g. "--reps 1 --n 300 --latency-runs 50" for a short check);
// BENCH_PGHOST/BENCH_PGPORT/BENCH_PGUSER/BENCH_PGPASSWORD, when set, point it elsewhere (the
// machine's PostgreSQL of the peers' README: 127.0.0.1:5432, bench/bench).
// Run it when nothing else runs: never beside `npm run bench`.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadStackConfig } from '../src/stack/config.js';
import { format } from './stats.js';

const config = loadStackConfig();
const source = process.env.BENCH_PEERS_DIR ?? '/work/shared/bench-peers';
const dir = join(config.root, '.cache', 'bench', 'peers');
const tag = 'sous-sitting';

if (!existsSync(join(source, 'pgboss-bench.mjs'))) {
  console.error(`bench:peers: no peer harness in ${source} (set BENCH_PEERS_DIR)`);
  process.exit(2);
}
if (!existsSync(join(dir, 'node_modules'))) {
  cpSync(source, dir, { recursive: true, filter: (p) => !p.includes('node_modules') && !p.includes('/results') });
  const install = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'inherit' });
  if (install.status !== 0) process.exit(install.status ?? 1);
}

const env = {
  ...process.env,
  BENCH_PGHOST: process.env.BENCH_PGHOST ?? '127.0.0.1',
  BENCH_PGPORT: process.env.BENCH_PGPORT ?? String(config.pgPort),
  BENCH_PGUSER: process.env.BENCH_PGUSER ?? 'postgres', // the stack trusts local connections
  BENCH_PGPASSWORD: process.env.BENCH_PGPASSWORD ?? 'unused',
};
const args = [
  'pgboss-bench.mjs',
  '--variant',
  'notify-tx',
  '--batch-size',
  '10',
  '--burst',
  '--tag',
  tag,
  ...(process.env.BENCH_PEERS_ARGS ?? '').split(/\s+/).filter((a) => a.length > 0),
];
console.log(
  `bench:peers: node ${args.join(' ')} (PostgreSQL ${env.BENCH_PGHOST}:${env.BENCH_PGPORT} as ${env.BENCH_PGUSER})`,
);
const peer = spawnSync(process.execPath, args, { cwd: dir, env, stdio: 'inherit' });
if (peer.status !== 0) process.exit(peer.status ?? 1);

interface Spread {
  median: number;
  min: number;
  max: number;
}
const peerResult = JSON.parse(readFileSync(join(dir, 'results', `pgboss-${tag}-latest.json`), 'utf8')) as {
  summary: { throughput?: { stepsPerSec: Spread }; latency?: { p50: Spread; p99: Spread } };
};
/** The latest `npm run bench` figures of one workload (bench/run.ts writes one file per workload). */
function latestOf(workload: string): { at: string; figures: Record<string, Spread> } | undefined {
  const file = join(config.root, '.cache', 'bench', 'latest', `${workload}.json`);
  return existsSync(file)
    ? (JSON.parse(readFileSync(file, 'utf8')) as { at: string; figures: Record<string, Spread> })
    : undefined;
}
const saturation = latestOf('saturation');
const low = latestOf('low');

const show = (s: Spread | undefined) =>
  s === undefined ? 'n/a' : `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
const rows: [string, Spread | undefined, Spread | undefined, 'higher' | 'lower'][] = [
  [
    '10-step saturation, steps/s',
    saturation?.figures.stepsPerSecond,
    peerResult.summary.throughput?.stepsPerSec,
    'higher',
  ],
  ['10-step one at a time, e2e p50 ms', low?.figures.endToEndP50, peerResult.summary.latency?.p50, 'lower'],
  ['10-step one at a time, e2e p99 ms', low?.figures.endToEndP99, peerResult.summary.latency?.p99, 'lower'],
];
console.log(
  `\nsous (saturation ${saturation?.at ?? 'not run yet'}, one at a time ${low?.at ?? 'not run yet'}) vs pg-boss notify-tx batch 10, medians (min–max):`,
);
for (const [label, s, p, better] of rows) {
  const ratio = s !== undefined && p !== undefined ? s.median / p.median : Number.NaN;
  console.log(
    `  ${label.padEnd(36)} sous ${show(s).padEnd(22)} pg-boss ${show(p).padEnd(22)} sous/pg-boss ${Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : 'n/a'} (${better} is better)`,
  );
}
