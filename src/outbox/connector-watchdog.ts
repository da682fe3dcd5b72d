import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.js';

// The outbox reaches Kafka only through the Debezium connector. Debezium does not
// recover by itself from every PostgreSQL restart: a task that cannot reach the
// database while it (re)starts ends FAILED ("Couldn't initialize type registry") and
// Kafka Connect never retries a FAILED task. Commands then wait in sous.outbox until
// someone restarts it. The watchdog is that someone.

/** One part (the connector or one of its tasks) as Kafka Connect reports it. */
export interface ConnectorPartStatus {
  readonly state: string;
  readonly trace?: string;
}

/** GET /connectors/{name}/status, as far as sous reads it. */
export interface ConnectorStatus {
  readonly connector: ConnectorPartStatus;
  readonly tasks: readonly (ConnectorPartStatus & { readonly id: number })[];
}

/** A FAILED part: which one, and the first line of its trace (the exception). */
export interface FailedPart {
  readonly part: string;
  readonly reason: string;
}

/** The FAILED parts of a status, connector first. Pure. */
export function failedParts(status: ConnectorStatus): FailedPart[] {
  const parts: (ConnectorPartStatus & { name: string })[] = [
    { ...status.connector, name: 'connector' },
    ...status.tasks.map((t) => ({ ...t, name: `task ${t.id}` })),
  ];
  return parts
    .filter((p) => p.state === 'FAILED')
    .map((p) => ({ part: p.name, reason: (p.trace ?? '').split('\n')[0] ?? '' }));
}

/** True when the connector and every task (at least one) run. Pure. */
export function isRunning(status: ConnectorStatus): boolean {
  return (
    status.connector.state === 'RUNNING' && status.tasks.length > 0 && status.tasks.every((t) => t.state === 'RUNNING')
  );
}

/** Reads a connector's status; undefined when Connect does not know the connector (404). */
export async function readConnectorStatus(
  connectUrl: string,
  name: string,
  timeoutMs = 10_000,
): Promise<ConnectorStatus | undefined> {
  const response = await fetch(`${connectUrl}/connectors/${encodeURIComponent(name)}/status`, {
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (response.status === 404) return undefined;
  if (!response.ok) throw new Error(`Kafka Connect answered ${response.status} to the status of ${name}`);
  return (await response.json()) as ConnectorStatus;
}

/**
 * Restarts the FAILED parts of a connector (Kafka Connect ≥ 3.0, KIP-745). 'busy' when the
 * Connect cluster is rebalancing (409): the caller tries again later.
 */
export async function restartFailedParts(
  connectUrl: string,
  name: string,
  timeoutMs = 10_000,
): Promise<'restarted' | 'busy'> {
  const response = await fetch(
    `${connectUrl}/connectors/${encodeURIComponent(name)}/restart?includeTasks=true&onlyFailed=true`,
    { method: 'POST', signal: AbortSignal.timeout(timeoutMs) },
  );
  if (response.status === 409) return 'busy';
  if (!response.ok) {
    throw new Error(`Kafka Connect refused to restart ${name}: ${response.status} ${await response.text()}`);
  }
  return 'restarted';
}

/** Options of the connector watchdog. */
export interface ConnectorWatchdogOptions {
  /** Kafka Connect REST address, e.g. http://connect:8083. */
  readonly connectUrl: string;
  /** The outbox connector's name. @default 'sous-outbox' */
  readonly connectorName?: string;
  /** Time between two status checks. @default 10000 */
  readonly intervalMs?: number;
  /** Failed checks in a row after which each further one logs at error level. @default 6 */
  readonly escalateAfter?: number;
  readonly logger: Logger;
}

export interface ConnectorWatchdog {
  stop(): Promise<void>;
}

/**
 * Checks the outbox connector every `intervalMs` and restarts whatever is FAILED. Several
 * control planes may each run one: a restart of an already restarted task is harmless.
 */
export function startConnectorWatchdog(options: ConnectorWatchdogOptions): ConnectorWatchdog {
  const name = options.connectorName ?? 'sous-outbox';
  const intervalMs = options.intervalMs ?? 10_000;
  const escalateAfter = options.escalateAfter ?? 6;
  const log = options.logger.child({ connector: name });
  const stopped = new AbortController();
  let failedChecks = 0;

  const check = async () => {
    let status: ConnectorStatus | undefined;
    try {
      status = await readConnectorStatus(options.connectUrl, name);
    } catch (error) {
      // Connect itself is down or restarting: nothing to restart through it.
      log.warn({ err: error }, 'could not read the outbox connector status');
      return;
    }
    if (status === undefined) {
      log.warn('the outbox connector is not registered in Kafka Connect: commands stay in sous.outbox');
      return;
    }
    const failed = failedParts(status);
    if (failed.length === 0) {
      if (failedChecks > 0) log.info({ failedChecks }, 'the outbox connector runs again');
      failedChecks = 0;
      return;
    }
    failedChecks++;
    const outcome = await restartFailedParts(options.connectUrl, name).catch((error: unknown) => {
      log.warn({ err: error }, 'restarting the outbox connector failed');
      return 'error' as const;
    });
    const fields = { failed, outcome, failedChecks };
    if (failedChecks > escalateAfter)
      log.error(fields, 'the outbox connector keeps failing: commands wait in sous.outbox');
    else log.warn(fields, 'the outbox connector had FAILED: restarted it');
  };

  const loop = (async () => {
    while (!stopped.signal.aborted) {
      await check();
      await sleep(intervalMs, undefined, { signal: stopped.signal }).catch(() => undefined);
    }
  })();

  return {
    async stop() {
      stopped.abort();
      await loop;
    },
  };
}
