import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Artifacts } from './artifacts.js';
import { connectUrl, type StackConfig } from './config.js';
import { requireJava, startJvmDaemon, writeLog4j } from './kafka.js';
import { javaClientProperties, type JavaClientSecurity } from './secure.js';
import { failedParts, isRunning, readConnectorStatus, restartFailedParts } from '../outbox/connector-watchdog.js';
import { assertPortFree, daemonFiles, runningPid, stopDaemon, StackError, waitFor, waitForDaemon } from './process.js';

/** Name under which the outbox connector is registered in Kafka Connect. */
export const OUTBOX_CONNECTOR = 'sous-outbox';

function connectPaths(config: StackConfig) {
  return {
    props: join(config.stackDir, 'conf', 'connect-distributed.properties'),
    ...daemonFiles(config.stackDir, 'connect'),
    connectorFile: join(config.root, 'connectors', 'outbox-connector.json'),
  };
}

export function connectPid(config: StackConfig): number | undefined {
  return runningPid(connectPaths(config).pidFile);
}

async function rest(config: StackConfig, path: string, init?: RequestInit): Promise<Response> {
  return fetch(`${connectUrl(config)}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });
}

export interface StartConnectOptions {
  /** SASL_SSL to the broker, for Connect's own clients and its connectors' (see javaClientProperties). @default plaintext */
  readonly kafkaSecurity?: JavaClientSecurity;
  /** Settings merged over connectors/outbox-connector.json (e.g. database.sslmode). @default none */
  readonly connector?: Readonly<Record<string, string>>;
  /** The connector's PostgreSQL password (SOUS_PG_PASSWORD in its ${env:} settings). @default SOUS_PG_PASSWORD, else empty */
  readonly pgPassword?: string;
}

/** Runs a Kafka Connect worker in distributed mode with the Debezium plugin on its plugin path. */
export async function startConnect(
  config: StackConfig,
  artifacts: Artifacts,
  log: (line: string) => void,
  options: StartConnectOptions = {},
): Promise<void> {
  const p = connectPaths(config);
  if (connectPid(config) === undefined) {
    requireJava();
    await assertPortFree(config.connectPort, 'SOUS_CONNECT_PORT', 'Kafka Connect');
    mkdirSync(join(config.stackDir, 'conf'), { recursive: true });
    const log4j = writeLog4j(config);
    writeFileSync(
      p.props,
      [
        `bootstrap.servers=127.0.0.1:${config.kafkaPort}`,
        'group.id=sous-connect',
        'config.storage.topic=sous-connect-configs',
        'config.storage.replication.factor=1',
        'offset.storage.topic=sous-connect-offsets',
        'offset.storage.replication.factor=1',
        'offset.storage.partitions=5',
        'status.storage.topic=sous-connect-status',
        'status.storage.replication.factor=1',
        'status.storage.partitions=1',
        'key.converter=org.apache.kafka.connect.storage.StringConverter',
        'value.converter=org.apache.kafka.connect.storage.StringConverter',
        `listeners=http://127.0.0.1:${config.connectPort}`,
        'rest.advertised.host.name=127.0.0.1',
        `rest.advertised.port=${config.connectPort}`,
        // The parent of the debezium-connector-postgres folder, as Connect expects.
        `plugin.path=${artifacts.plugins}`,
        // Offsets (the replication slot position) are committed every second: after a
        // crash at most that much is re-read, and re-sent rows keep their id header.
        'offset.flush.interval.ms=1000',
        'producer.linger.ms=0',
        // A restarted worker takes its tasks back at once rather than after 5 minutes.
        'scheduled.rebalance.max.delay.ms=0',
        `exactly.once.source.support=${config.connectExactlyOnce ? 'enabled' : 'disabled'}`,
        'topic.creation.enable=true',
        // Every plugin on the path ships ServiceLoader manifests: skip the slow scan.
        'plugin.discovery=service_load',
        // Connection settings reach the connector file as ${env:...} so the same file
        // serves docker-compose and this stack.
        'config.providers=env',
        'config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider',
        ...(options.kafkaSecurity === undefined ? [] : javaClientProperties(options.kafkaSecurity)),
        '',
      ].join('\n'),
    );
    startJvmDaemon(config, artifacts, log4j, {
      mainClass: 'org.apache.kafka.connect.cli.ConnectDistributed',
      args: [p.props],
      logFile: p.logFile,
      pidFile: p.pidFile,
      env: {
        ...process.env,
        SOUS_PG_HOST: '127.0.0.1',
        SOUS_PG_PORT: String(config.pgPort),
        SOUS_PG_USER: config.pgUser,
        SOUS_PG_PASSWORD: options.pgPassword ?? process.env.SOUS_PG_PASSWORD ?? '',
        SOUS_PG_DATABASE: config.pgDatabase,
      },
    });
  }
  await waitForDaemon(p, async () => (await rest(config, '/connectors')).ok, {
    timeoutMs: 120_000,
    intervalMs: 500,
    code: 'SOUS_STACK_CONNECT_START_FAILED',
    problem: `Kafka Connect did not answer on ${connectUrl(config)}`,
  });
  await registerOutboxConnector(config, options.connector);
  log(`connect    ${connectUrl(config)} connector ${OUTBOX_CONNECTOR} RUNNING (log ${p.logFile})`);
}

/** PUTs connectors/outbox-connector.json (idempotent) and waits until its task runs. */
export async function registerOutboxConnector(
  config: StackConfig,
  overrides: Readonly<Record<string, string>> = {},
): Promise<void> {
  const p = connectPaths(config);
  const file = readFileSync(p.connectorFile, 'utf8');
  // A broken file fails here with its own parse error.
  const body = JSON.stringify({ ...(JSON.parse(file) as Record<string, unknown>), ...overrides });
  await waitFor(
    async () => {
      const response = await rest(config, `/connectors/${OUTBOX_CONNECTOR}/config`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body,
      });
      // 409: the worker is rebalancing; try again.
      if (response.status === 409 || response.status >= 500) return false;
      if (!response.ok) {
        throw new StackError(
          'SOUS_STACK_CONNECTOR_REJECTED',
          `Kafka Connect rejected ${p.connectorFile}: ${response.status} ${await response.text()}`,
        );
      }
      return true;
    },
    {
      // A worker started again after a SIGKILL may find its dead predecessor still in the
      // group: the rebalance then waits for it up to the group's rebalance timeout (60 s),
      // answering 409 until it ends. So this waits well past that.
      timeoutMs: 150_000,
      intervalMs: 500,
      failure: () => new StackError('SOUS_STACK_CONNECTOR_REJECTED', `could not register ${OUTBOX_CONNECTOR}`),
    },
  );
  await waitForConnectorRunning(config);
}

/**
 * Waits until the outbox connector and its tasks run. A part that ends FAILED (Debezium
 * gives up when PostgreSQL is unreachable as its task starts, e.g. right after a restart)
 * is restarted, with a growing pause, until `timeoutMs`; only then is it an error.
 */
export async function waitForConnectorRunning(config: StackConfig, timeoutMs = 120_000): Promise<void> {
  const p = connectPaths(config);
  let last = 'no status yet';
  let restartPauseMs = 1_000;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const status = await readConnectorStatus(connectUrl(config), OUTBOX_CONNECTOR);
      if (status === undefined) {
        last = 'connector not registered';
      } else if (isRunning(status)) {
        return;
      } else {
        const failed = failedParts(status);
        if (failed.length > 0) {
          last = `FAILED: ${failed.map((f) => `${f.part}: ${f.reason}`).join('; ')}`;
          await restartFailedParts(connectUrl(config), OUTBOX_CONNECTOR);
          await sleep(Math.min(restartPauseMs, Math.max(0, deadline - Date.now())));
          restartPauseMs = Math.min(restartPauseMs * 2, 10_000);
          continue;
        }
        last = `connector ${status.connector.state}, tasks ${status.tasks.map((t) => t.state).join(',') || 'none'}`;
      }
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(250);
  }
  throw new StackError(
    last.startsWith('FAILED') ? 'SOUS_STACK_CONNECTOR_FAILED' : 'SOUS_STACK_CONNECTOR_NOT_RUNNING',
    `connector ${OUTBOX_CONNECTOR} not running after ${timeoutMs} ms (${last}); see ${p.logFile}`,
  );
}

export async function stopConnect(config: StackConfig, signal: NodeJS.Signals = 'SIGTERM'): Promise<boolean> {
  return stopDaemon(connectPaths(config).pidFile, { signal, graceMs: 30_000 });
}
