// The faults of the chaos run and how each is injected and undone. A fault takes one part
// down (a SIGKILL, an immediate PostgreSQL shutdown, the broker unreachable on loopback) and
// brings it back; faults of different parts may overlap, two of the same part never do.
import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeChild } from '../scripts/node-child.js';
import type { Artifacts } from '../src/stack/artifacts.js';
import type { StackConfig } from '../src/stack/config.js';
import { startConnect, stopConnect } from '../src/stack/connect.js';
import { startKafka, stopKafka } from '../src/stack/kafka.js';
import { startPostgres, stopPostgres } from '../src/stack/postgres.js';
import type { LoopbackBlock } from './loopback-block.js';

export const ALL_FAULTS = ['worker', 'control-plane', 'connect', 'broker', 'postgres', 'network'] as const;
export type Fault = (typeof ALL_FAULTS)[number];

/** The part a fault takes down: the broker fault and the network fault share the broker. */
const PART: Record<Fault, string> = {
  worker: 'worker',
  'control-plane': 'control-plane',
  connect: 'connect',
  broker: 'broker',
  network: 'broker',
  postgres: 'postgres',
};

export interface InjectedFault {
  readonly fault: Fault;
  /** Which one, where there are several (worker 2, control plane 1). */
  readonly target: string;
  readonly atMs: number;
  readonly downMs: number;
}

export interface FaultParts {
  readonly stack: StackConfig;
  readonly artifacts: Artifacts;
  readonly workers: readonly NodeChild[];
  readonly controlPlanes: readonly NodeChild[];
  /** The broker's port blocked on loopback; needed for the network fault. */
  readonly brokerBlock?: LoopbackBlock;
  readonly stackLog: (line: string) => void;
}

/**
 * Starts a process as a supervisor (systemd, Kubernetes) would: one that exits before it is
 * ready, e.g. a control plane started while the broker is down, is started again a second
 * later, until `timeoutMs` has passed.
 */
export async function startSupervised(
  child: NodeChild,
  log: (line: string) => void,
  timeoutMs = 300_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let tries = 1; ; tries++) {
    try {
      await child.start(120_000);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      if (tries === 1) log(`  … ${child.name} exited before it was ready; starting it again until it is`);
      await child.kill();
      await sleep(1000);
    }
  }
}

/**
 * Starts a part of the stack as a supervisor would: when it does not come up (Kafka Connect
 * started while the broker is unreachable gives up waiting for it), it is killed and started
 * again, until `timeoutMs` has passed.
 */
async function startPartSupervised(
  name: string,
  start: () => Promise<unknown>,
  kill: () => Promise<unknown>,
  log: (line: string) => void,
  timeoutMs = 300_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let tries = 1; ; tries++) {
    try {
      await start();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      if (tries === 1) log(`  … ${name} did not come up; starting it again until it does`);
      await kill();
      await sleep(1000);
    }
  }
}

function pick<T>(items: readonly T[]): T {
  const item = items[randomInt(items.length)];
  if (item === undefined) throw new Error('nothing to pick from');
  return item;
}

/** Injects faults, one part at a time each, and records them. */
export class FaultInjector {
  readonly injected: InjectedFault[] = [];
  readonly #busy = new Set<string>();
  readonly #running = new Set<Promise<void>>();

  constructor(
    readonly parts: FaultParts,
    readonly begin: number,
    readonly log: (line: string) => void,
  ) {}

  /** Faults among `faults` whose part is up now. */
  available(faults: readonly Fault[]): Fault[] {
    return faults.filter((f) => !this.#busy.has(PART[f]));
  }

  /** Starts a fault; it runs until its part is back. Rejections surface in `settle()`. */
  start(fault: Fault): void {
    const part = PART[fault];
    if (this.#busy.has(part)) throw new Error(`${part} is already down`);
    this.#busy.add(part);
    const running = this.#inject(fault).finally(() => {
      this.#busy.delete(part);
      this.#running.delete(running);
    });
    this.#running.add(running);
  }

  /** Waits for every fault in progress to be undone. */
  async settle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running]);
  }

  /** SIGKILLs a part of the stack and starts it again, as a supervisor would, 0.5–3 s later. */
  async #killPart(fault: Fault, name: string, kill: () => Promise<unknown>, start: () => Promise<unknown>) {
    this.log(`  ✗ ${fault} at ${((Date.now() - this.begin) / 1000).toFixed(1)} s`);
    await kill();
    await sleep(randomInt(500, 3000));
    await startPartSupervised(name, start, kill, this.log);
  }

  async #inject(fault: Fault): Promise<void> {
    const { stack, artifacts, stackLog } = this.parts;
    const at = Date.now() - this.begin;
    const down = Date.now();
    let target: string = fault;
    const seconds = (ms: number) => (ms / 1000).toFixed(1);
    const restart = async (child: NodeChild) => {
      target = child.name;
      this.log(`  ✗ ${fault} (${child.name}) at ${seconds(at)} s`);
      await child.kill();
      await sleep(randomInt(500, 3000));
      await startSupervised(child, this.log);
    };
    switch (fault) {
      case 'worker':
        await restart(pick(this.parts.workers));
        break;
      case 'control-plane':
        await restart(pick(this.parts.controlPlanes));
        break;
      case 'connect':
        await this.#killPart(
          'connect',
          'Kafka Connect',
          () => stopConnect(stack, 'SIGKILL'),
          () => startConnect(stack, artifacts, stackLog),
        );
        break;
      case 'broker':
        await this.#killPart(
          'broker',
          'the broker',
          () => stopKafka(stack, 'SIGKILL'),
          () => startKafka(stack, artifacts, stackLog),
        );
        break;
      case 'postgres':
        this.log(`  ✗ postgres at ${seconds(at)} s`);
        // An immediate shutdown is a crash for PostgreSQL: it recovers from its WAL.
        stopPostgres(stack, { immediate: true });
        await sleep(randomInt(500, 2000));
        await startPostgres(stack, stackLog);
        break;
      case 'network': {
        const block = this.parts.brokerBlock;
        if (block === undefined) throw new Error('the network fault needs the broker port to block');
        this.log(`  ✗ network (broker port ${block.port} unreachable) at ${seconds(at)} s`);
        block.block();
        try {
          await sleep(randomInt(3000, 10_000));
        } finally {
          block.unblock();
        }
        break;
      }
    }
    const downMs = Date.now() - down;
    this.injected.push({ fault, target, atMs: at, downMs });
    this.log(`  ✓ ${target} back after ${seconds(downMs)} s`);
  }
}
