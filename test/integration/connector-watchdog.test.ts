// The connector watchdog against the real Kafka Connect: a Debezium task that met a
// PostgreSQL starting up as it started ends FAILED and stays FAILED (Connect never retries it);
// the watchdog restarts it once PostgreSQL answers again.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import pino from 'pino';
import {
  failedParts,
  isRunning,
  readConnectorStatus,
  startConnectorWatchdog,
  type ConnectorStatus,
} from '../../src/outbox/connector-watchdog.js';
import { connectUrl } from '../../src/stack/config.js';
import { stackConfig, testDatabase, uniqueName } from '../helpers/stack.js';

const url = connectUrl(stackConfig);

/**
 * PostgreSQL's answer to a connection while it recovers from a crash: the server accepts
 * the socket, then refuses the session with FATAL 57P03. (After a restart Debezium meets
 * exactly this, and its task ends FAILED.)
 */
function startingUpError(): Buffer {
  const fields = ['SFATAL', 'VFATAL', 'C57P03', 'Mthe database system is starting up'];
  const body = Buffer.concat([...fields.map((f) => Buffer.from(`${f}\0`)), Buffer.from([0])]);
  const header = Buffer.alloc(5);
  header.write('E', 0);
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/**
 * A TCP proxy to PostgreSQL on a port of its own. Until `open(true)` it answers as a
 * PostgreSQL that is starting up; then it forwards to the stack's PostgreSQL.
 */
async function pgProxy(): Promise<{
  port: number;
  open(forward: boolean, connections?: number): void;
  close(): Promise<void>;
}> {
  let forwarding = false;
  let forwardsLeft = Number.POSITIVE_INFINITY;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    if (!forwarding || forwardsLeft-- <= 0) {
      client.on('data', (packet: Buffer) => {
        // SSLRequest (length 8, code 80877103): "no SSL", then the startup packet follows.
        if (packet.length === 8 && packet.readInt32BE(4) === 80877103) client.write('N');
        else client.end(startingUpError());
      });
      return;
    }
    const upstream = tcpConnect(stackConfig.pgPort, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    port: address.port,
    open: (forward: boolean, connections = Number.POSITIVE_INFINITY) => {
      forwarding = forward;
      forwardsLeft = connections;
      if (!forward) for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function statusOf(name: string): Promise<ConnectorStatus> {
  const status = await readConnectorStatus(url, name);
  assert.ok(status !== undefined, `${name} is registered`);
  return status;
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(250);
  }
  assert.fail(`timed out waiting until ${what}`);
}

describe('connector watchdog', () => {
  const name = uniqueName('sous-watchdog');
  const slot = name.replaceAll('-', '_');
  const db = testDatabase();
  let proxy: Awaited<ReturnType<typeof pgProxy>>;

  before(async () => {
    proxy = await pgProxy();
  });

  after(async () => {
    await fetch(`${url}/connectors/${name}`, { method: 'DELETE' });
    // The task may hold the slot a moment after the connector is deleted.
    await waitUntil('the test slot is released', async () => {
      const { rows } = await sql<{ active: boolean }>`
        SELECT active FROM pg_replication_slots WHERE slot_name = ${slot}`.execute(db);
      return rows.every((r) => !r.active);
    });
    await sql`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ${slot}`.execute(
      db,
    );
    await proxy.close();
    await db.destroy();
  });

  it('restarts a task that FAILED because PostgreSQL was starting up as it started', async () => {
    const base = JSON.parse(
      readFileSync(join(stackConfig.root, 'connectors', 'outbox-connector.json'), 'utf8'),
    ) as Record<string, string>;
    // The outbox connector's own settings, but through the proxy, with its own slot and
    // topics and no router: it must not publish anything another test could see.
    const { transforms: _t, ...rest } = base;
    const config = Object.fromEntries(Object.entries(rest).filter(([k]) => !k.startsWith('transforms.')));
    // Connect checks the database as it validates the config, so the proxy forwards while the
    // connector is created (paused), then refuses as the task starts.
    proxy.open(true);
    const response = await fetch(`${url}/connectors`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name,
        initial_state: 'PAUSED',
        config: {
          ...config,
          'database.hostname': '127.0.0.1',
          'database.port': String(proxy.port),
          'slot.name': slot,
          'topic.prefix': name,
        },
      }),
    });
    assert.ok(response.ok, `connector registered: ${response.status} ${await response.text()}`);
    proxy.open(true, 1); // the task's first connection only: the next one meets a PostgreSQL starting up
    const resumed = await fetch(`${url}/connectors/${name}/resume`, { method: 'PUT' });
    assert.ok(resumed.ok, `connector resumed: ${resumed.status}`);

    await waitUntil('the task has FAILED', async () => {
      const status = await readConnectorStatus(url, name); // 404 until the connector starts
      return status !== undefined && failedParts(status).length > 0;
    });
    proxy.open(true);
    // Kafka Connect does not retry a FAILED task by itself: PostgreSQL is back, yet it stays FAILED.
    await sleep(5_000);
    assert.ok(failedParts(await statusOf(name)).length > 0, 'still FAILED without the watchdog');

    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const watchdog = startConnectorWatchdog({ connectUrl: url, connectorName: name, intervalMs: 500, logger });
    try {
      await waitUntil('the watchdog brought the connector back', async () => isRunning(await statusOf(name)));
      await waitUntil('the watchdog saw it run again', async () =>
        Promise.resolve(lines.some((l) => l.includes('runs again'))),
      );
    } finally {
      await watchdog.stop();
    }
    const restarted = lines.map((l) => JSON.parse(l) as { msg: string; outcome?: string; failed?: unknown[] });
    const restart = restarted.find((l) => l.msg.includes('restarted it'));
    assert.ok(restart !== undefined, 'the restart was logged');
    assert.equal(restart.outcome, 'restarted');
    assert.ok((restart.failed ?? []).length > 0, 'the log names what had failed');
  });
});
