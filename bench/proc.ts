// CPU time and memory of processes, read from /proc (Linux): the bench's per-process cost.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's CPU fields (USER_HZ; 100 on every common kernel). */
const ticksPerSecond = (() => {
  const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number.parseInt(result.stdout, 10);
  return Number.isInteger(n) && n > 0 ? n : 100;
})();
const msPerTick = 1000 / ticksPerSecond;

interface Stat {
  readonly ppid: number;
  /** utime + stime of the process (all its threads), ms. */
  readonly ownMs: number;
  /** cutime + cstime: children it has waited for, ms. */
  readonly reapedMs: number;
}

/** /proc/<pid>/stat, or undefined when the process is gone. */
function stat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const field = (n: number) => Number(fields[n - 3]);
  return { ppid: field(4), ownMs: (field(14) + field(15)) * msPerTick, reapedMs: (field(16) + field(17)) * msPerTick };
}

/** CPU time a process has used so far (all threads), ms; NaN when it is gone. */
export function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  return stat(pid)?.ownMs ?? Number.NaN;
}

/**
 * CPU time of a process and all its children ever, ms: its own, its children that have
 * exited (cutime/cstime, once reaped) and its live children. For the PostgreSQL cluster
 * (the postmaster reaps every backend): a backend that ends between two readings moves from
 * the live sum to the reaped one, so a delta counts every backend exactly once.
 */
export function treeCpuMs(parentPid: number | undefined): number {
  if (parentPid === undefined) return Number.NaN;
  const parent = stat(parentPid);
  if (parent === undefined) return Number.NaN;
  let total = parent.ownMs + parent.reapedMs;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const child = stat(Number(entry));
    if (child?.ppid === parentPid) total += child.ownMs;
  }
  return total;
}

/** Busy CPU time of the whole machine (all cores, every process of every user), ms. */
export function machineBusyMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal guest guest_nice
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * msPerTick;
}

/** Peak (VmHWM) and current (VmRSS) resident memory of a process, MiB. */
export function memoryOf(pid: number | undefined): { peakMiB: number; rssMiB: number } {
  if (pid === undefined) return { peakMiB: Number.NaN, rssMiB: Number.NaN };
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return { peakMiB: Number.NaN, rssMiB: Number.NaN };
  }
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { peakMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
}

/** The processes whose CPU the bench accounts for, by name. */
export interface Processes {
  readonly controlPlane: number | undefined;
  readonly worker: number | undefined;
  /** The postmaster: the cluster's CPU is its tree (every backend and background process). */
  readonly postgres: number | undefined;
  readonly kafka: number | undefined;
  readonly connect: number | undefined;
}

export type CpuReading = Readonly<Record<keyof Processes | 'bench' | 'machine', number>>;

export function readCpu(p: Processes): CpuReading {
  const self = process.cpuUsage();
  return {
    controlPlane: processCpuMs(p.controlPlane),
    worker: processCpuMs(p.worker),
    postgres: treeCpuMs(p.postgres),
    kafka: processCpuMs(p.kafka),
    connect: processCpuMs(p.connect),
    // The bench itself: it starts the executions (a control-plane API call) and polls.
    bench: (self.user + self.system) / 1000,
    machine: machineBusyMs(),
  };
}

/**
 * CPU per step of each process between two readings, ms; `other` is the rest of the
 * machine's busy time (other users' processes): when it is large the figures are noisy.
 */
export function cpuPerStep(before: CpuReading, after: CpuReading, steps: number): Record<string, number> {
  const d = (k: keyof CpuReading) => after[k] - before[k];
  const ours = d('controlPlane') + d('worker') + d('postgres') + d('kafka') + d('connect') + d('bench');
  return {
    cpuMsPerStepControlPlane: d('controlPlane') / steps,
    cpuMsPerStepWorker: d('worker') / steps,
    cpuMsPerStepPostgres: d('postgres') / steps,
    cpuMsPerStepKafka: d('kafka') / steps,
    cpuMsPerStepConnect: d('connect') / steps,
    cpuMsPerStepBench: d('bench') / steps,
    cpuMsPerStepOther: Math.max(0, d('machine') - ours) / steps,
  };
}
