// A child node process running a TypeScript entry point (through tsx): started until it
// prints its ready line, SIGKILLed as a crash or stopped with SIGTERM. Used by the chaos
// run and the benchmarks.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT = join(import.meta.dirname, '..');

/**
 * Node flags of a control-plane process (also in package.json's `control-plane` script and
 * docker-compose's NODE_OPTIONS). A young generation of at most 2 × 16 MiB: under a steady
 * stream of replies V8 otherwise grows it to 2 × 64 MiB on a large machine, 100 MiB more
 * resident memory for garbage the next scavenge frees anyway (npm run bench, foreach: peak
 * 290 → about 225 MiB, items/s unchanged).
 */
export const CONTROL_PLANE_NODE_ARGS: readonly string[] = ['--max-semi-space-size=16'];

/** A child node process running a TypeScript entry point, its output kept for errors. */
export class NodeChild {
  #process: ChildProcess | undefined;
  #output = '';
  /** Process id of the running process; undefined before start. */
  get pid(): number | undefined {
    return this.#process?.pid;
  }

  constructor(
    readonly name: string,
    readonly entry: string,
    readonly env: Record<string, string>,
    readonly readyLine: string,
    /** Everything the process prints, across restarts. */
    readonly logFile: string,
    /** Flags for node itself, before the entry point. @default none */
    readonly nodeArgs: readonly string[] = [],
  ) {}

  async start(timeoutMs = 60_000): Promise<void> {
    this.#output = '';
    const child = spawn(process.execPath, [...this.nodeArgs, '--import', 'tsx', this.entry], {
      cwd: ROOT,
      env: { ...process.env, ...this.env, SOUS_LOG_LEVEL: process.env.SOUS_LOG_LEVEL ?? 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#process = child;
    const keep = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString('utf8')).slice(-20_000);
      appendFileSync(this.logFile, chunk);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const deadline = Date.now() + timeoutMs;
    while (!this.#output.includes(this.readyLine)) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${this.name} exited before it was ready: ${this.#output.slice(-2000)}`);
      }
      if (Date.now() > deadline)
        throw new Error(`${this.name} not ready after ${timeoutMs} ms: ${this.#output.slice(-2000)}`);
      await sleep(100);
    }
  }

  /** SIGKILL: no drain, no goodbye — a crash. */
  async kill(): Promise<void> {
    const child = this.#process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    const child = this.#process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }
}
