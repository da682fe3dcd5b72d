import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { after } from 'node:test';
import { regionStacks } from '../../src/regions/region-stacks.js';
import { kafkaBrokers, type StackConfig } from '../../src/stack/config.js';
import { stackDown, stackStatus, stackUp } from '../../src/stack/stack.js';
import { stackConfig } from './stack.js';

/*
 * Two real regions for the tests: the test stack (`npm test` brings it up) is the first,
 * a second whole stack (PostgreSQL, Kafka, Connect) on the derived ports is the other.
 * A file that needs it brings it up and stops it after its tests when it started it.
 */

/** The second region's stack: ports derived from the test stack's, smaller heaps (two JVMs more). */
export const remoteStack: StackConfig = {
  ...(regionStacks(stackConfig, ['home', 'remote'])[1]?.config ?? stackConfig),
  // 384 MiB: the broker's log cleaner alone takes 128 MiB at start (256 MiB ran out once).
  jvmHeap: '384m',
};

let startedHere = false;

/**
 * Brings the second region up (idempotent). Register `after(stopRemoteRegion)` at the
 * top of the file: an `after` registered inside a `before` hook would run right after it.
 */
export async function useRemoteRegion(): Promise<void> {
  const status = stackStatus(remoteStack);
  const wasRunning = Object.values(status).every((pid) => pid !== undefined);
  await stackUp(remoteStack, (line) => process.stderr.write(`[remote stack] ${line}\n`));
  if (!wasRunning && process.env.SOUS_KEEP_REGIONS !== 'true') startedHere = true;
}

/** Stops the second region when useRemoteRegion started it. */
export async function stopRemoteRegion(): Promise<void> {
  if (!startedHere) return;
  startedHere = false;
  await stackDown(remoteStack, (line) => process.stderr.write(`[remote stack] ${line}\n`));
}

export interface RelayProcess {
  readonly child: ChildProcess;
  /** Resolves once the relay printed that it is ready. */
  readonly ready: Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const root = resolve(import.meta.dirname, '..', '..');

/** The relay of `region` (producing into `brokers`) as a child process, so a test can SIGKILL it. */
export function spawnRelay(
  region: string,
  brokers: readonly string[],
  sources: readonly { region: string; brokers: readonly string[] }[],
  extraEnv: Readonly<Record<string, string>> = {},
): RelayProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(root, 'scripts', 'relay.ts')], {
    cwd: root,
    env: {
      ...process.env,
      SOUS_REGION: region,
      SOUS_KAFKA_BROKERS: brokers.join(','),
      SOUS_RELAY_SOURCES: sources.map((s) => `${s.region}=${s.brokers.join('|')}`).join(','),
      SOUS_LOG_FORMAT: 'json',
      SOUS_LOG_LEVEL: 'warn',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = new Promise<void>((resolveReady, reject) => {
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (text.includes('ready\n')) resolveReady();
    });
    child.once('exit', (code) => reject(new Error(`relay exited (${code}) before it was ready`)));
  });
  ready.catch(() => undefined);
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  };
  after(() => kill('SIGKILL'));
  return { child, ready, kill };
}

export const homeBrokers = kafkaBrokers(stackConfig);
export const remoteBrokers = kafkaBrokers(remoteStack);
