import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A stack problem that a person fixes: printed as one line, without a stack trace. */
export class StackError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StackError';
    this.code = code;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM means the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readPid(pidFile: string): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The pid recorded in `pidFile` when that process still runs. */
export function runningPid(pidFile: string): number | undefined {
  const pid = readPid(pidFile);
  return pid !== undefined && isAlive(pid) ? pid : undefined;
}

/** True when nothing listens on 127.0.0.1:port. */
export async function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const server = createServer();
    server.once('error', () => resolvePromise(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      server.close(() => resolvePromise(true));
    });
  });
}

export async function assertPortFree(port: number, envName: string, what: string): Promise<void> {
  if (!(await isPortFree(port))) {
    throw new StackError(
      'SOUS_STACK_PORT_TAKEN',
      `port ${port} for ${what} is already taken by another process: stop that process or choose another port with ${envName}=<port>`,
    );
  }
}

/** Fails with a one-line hint when `command` cannot be run. */
export function requireCommand(command: string, args: string[], hint: string): void {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  if (result.error !== undefined) {
    throw new StackError('SOUS_STACK_COMMAND_MISSING', `${command} not found: ${hint}`, {
      cause: result.error,
    });
  }
}

/** Where the stack daemon `name` writes its output (logs/<name>.log) and pid (run/<name>.pid). */
export function daemonFiles(stackDir: string, name: string): { logFile: string; pidFile: string } {
  return { logFile: join(stackDir, 'logs', `${name}.log`), pidFile: join(stackDir, 'run', `${name}.pid`) };
}

export interface DaemonSpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly pidFile: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/** Starts a process that outlives this one, its output appended to `logFile`. */
export function startDaemon(spec: DaemonSpec): number {
  mkdirSync(dirname(spec.logFile), { recursive: true });
  mkdirSync(dirname(spec.pidFile), { recursive: true });
  const out = openSync(spec.logFile, 'a');
  try {
    const child = spawn(spec.command, [...spec.args], {
      detached: true,
      stdio: ['ignore', out, out],
      env: spec.env ?? process.env,
      cwd: spec.cwd,
    });
    if (child.pid === undefined) {
      throw new StackError('SOUS_STACK_SPAWN_FAILED', `could not start ${spec.command}: see ${spec.logFile}`);
    }
    child.unref();
    writeFileSync(spec.pidFile, `${child.pid}\n`);
    return child.pid;
  } finally {
    closeSync(out);
  }
}

/**
 * Stops the process in `pidFile`: the given signal first, SIGKILL after `graceMs`.
 * Safe to call when nothing runs.
 */
export async function stopDaemon(
  pidFile: string,
  { signal = 'SIGTERM', graceMs = 20_000 }: { signal?: NodeJS.Signals; graceMs?: number } = {},
): Promise<boolean> {
  const pid = runningPid(pidFile);
  if (pid === undefined) {
    rmSync(pidFile, { force: true });
    return false;
  }
  process.kill(pid, signal);
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
  rmSync(pidFile, { force: true });
  return true;
}

/** Polls `check` until it returns true; fails with `failure()` after `timeoutMs`. */
export async function waitFor(
  check: () => Promise<boolean>,
  { timeoutMs, intervalMs = 250, failure }: { timeoutMs: number; intervalMs?: number; failure: () => Error },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // Not ready yet: keep polling until the deadline.
    }
    if (Date.now() > deadline) throw failure();
    await sleep(intervalMs);
  }
}

/**
 * Waits until the daemon in `pidFile` runs and `ready` holds. After `timeoutMs` it fails
 * with `code`, saying `problem` and the daemon's last log lines, so a person sees why.
 */
export async function waitForDaemon(
  { pidFile, logFile }: { pidFile: string; logFile: string },
  ready: () => Promise<boolean>,
  { timeoutMs, intervalMs, code, problem }: { timeoutMs: number; intervalMs?: number; code: string; problem: string },
): Promise<void> {
  await waitFor(async () => runningPid(pidFile) !== undefined && (await ready()), {
    timeoutMs,
    ...(intervalMs === undefined ? {} : { intervalMs }),
    failure: () => new StackError(code, `${problem}: ${tail(logFile, 2).replaceAll('\n', ' | ')} (log ${logFile})`),
  });
}

/** Last lines of a log file, for error messages. */
export function tail(file: string, lines = 5): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}
