import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { StackConfig } from './config.js';
import { assertPortFree, isAlive, StackError, tail } from './process.js';

/*
 * sous runs its own PostgreSQL cluster (initdb into the stack folder) rather than
 * reconfiguring the machine's service: Debezium needs wal_level=logical, which takes a
 * server restart, and the crash tests kill and restart PostgreSQL; neither should touch a
 * service other programs on the machine rely on. The machine's PostgreSQL binaries are used.
 */

export interface PgPaths {
  readonly bindir: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly logFile: string;
}

/** Where the stack's PostgreSQL binaries and data are (the bench reads the WAL with pg_waldump). */
export function postgresPaths(config: StackConfig): PgPaths {
  let bindir = config.pgBindir;
  if (bindir === undefined) {
    const result = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
    if (result.error !== undefined || result.status !== 0) {
      throw new StackError(
        'SOUS_STACK_COMMAND_MISSING',
        'pg_config not found: install the PostgreSQL 15 server (apt-get install postgresql-15) or set SOUS_PG_BINDIR to the folder holding initdb and pg_ctl',
      );
    }
    bindir = result.stdout.trim();
  }
  if (!existsSync(join(bindir, 'initdb')) || !existsSync(join(bindir, 'pg_ctl'))) {
    throw new StackError(
      'SOUS_STACK_COMMAND_MISSING',
      `initdb or pg_ctl not found in ${bindir}: install the PostgreSQL server package or set SOUS_PG_BINDIR`,
    );
  }
  const base = join(config.stackDir, 'pg');
  return {
    bindir,
    dataDir: join(base, 'data'),
    socketDir: join(base, 'run'),
    logFile: join(config.stackDir, 'logs', 'postgres.log'),
  };
}

/** PostgreSQL refuses to run as root: when we are root, its tools run as `postgres`. */
function asServerUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const uid = id('-u');
  const gid = id('-g');
  if (uid.status !== 0 || gid.status !== 0) {
    throw new StackError(
      'SOUS_STACK_NO_PG_USER',
      'running as root but there is no `postgres` user to own the PostgreSQL cluster: create it (useradd --system postgres) or run as a normal user',
    );
  }
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function runPgTool(config: StackConfig, tool: string, args: string[]): { status: number; output: string } {
  const p = postgresPaths(config);
  const owner = asServerUser();
  const command = owner === undefined ? join(p.bindir, tool) : 'runuser';
  const fullArgs = owner === undefined ? args : ['-u', 'postgres', '--', join(p.bindir, tool), ...args];
  const result = spawnSync(command, fullArgs, { encoding: 'utf8', cwd: config.stackDir });
  return { status: result.status ?? 1, output: `${result.stdout}${result.stderr}`.trim() };
}

function ensureOwned(path: string, kind: 'dir' | 'file', owner: { uid: number; gid: number } | undefined) {
  if (kind === 'dir') mkdirSync(path, { recursive: true, mode: 0o700 });
  else if (!existsSync(path)) closeSync(openSync(path, 'a'));
  if (owner !== undefined) chownSync(path, owner.uid, owner.gid);
}

/** The postmaster's pid while the cluster runs. */
export function postgresPid(config: StackConfig): number | undefined {
  const pidFile = join(postgresPaths(config).dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8').split('\n')[0] ?? '', 10);
  return Number.isInteger(pid) && isAlive(pid) ? pid : undefined;
}

/**
 * TLS for the stack's PostgreSQL (tests; the developer stack is plaintext): the server
 * gets these PEM files and pg_hba takes TCP connections over TLS only (`hostssl`), with
 * scram-sha-256 passwords for every user but the superuser the stack itself connects as.
 */
export interface PostgresTlsListener {
  readonly certFile: string;
  readonly keyFile: string;
  /** CA of `certFile`: the stack's own connections verify the server with it. */
  readonly caFile: string;
}

export interface StartPostgresOptions {
  readonly tls?: PostgresTlsListener;
  /** Password set on SOUS_PG_USER (needed once pg_hba asks for one). @default none */
  readonly userPassword?: string;
}

async function query<R extends pg.QueryResultRow = Record<string, unknown>>(
  config: StackConfig,
  database: string,
  text: string,
  tls?: PostgresTlsListener,
): Promise<pg.QueryResult<R>> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: config.pgPort,
    user: 'postgres',
    database,
    ...(tls === undefined ? {} : { ssl: { ca: readFileSync(tls.caFile, 'utf8'), rejectUnauthorized: true } }),
  });
  await client.connect();
  try {
    return await client.query<R>(text);
  } finally {
    await client.end();
  }
}

/** The server's TLS files in its data folder, owned by the server user (PostgreSQL refuses a key others can read). */
function installTlsFiles(dataDir: string, tls: PostgresTlsListener, owner: { uid: number; gid: number } | undefined) {
  for (const [from, name, mode] of [
    [tls.certFile, 'server.crt', 0o644],
    [tls.caFile, 'root.crt', 0o644],
    [tls.keyFile, 'server.key', 0o600],
  ] as const) {
    const to = join(dataDir, name);
    copyFileSync(from, to);
    chmodSync(to, mode);
    if (owner !== undefined) chownSync(to, owner.uid, owner.gid);
  }
  const hba = join(dataDir, 'pg_hba.conf');
  writeFileSync(
    hba,
    [
      'local all all trust',
      'hostssl all postgres 127.0.0.1/32 trust',
      'hostssl all all 127.0.0.1/32 scram-sha-256',
      'hostssl replication all 127.0.0.1/32 scram-sha-256',
      '',
    ].join('\n'),
  );
  if (owner !== undefined) chownSync(hba, owner.uid, owner.gid);
}

export async function startPostgres(
  config: StackConfig,
  log: (line: string) => void,
  options: StartPostgresOptions = {},
): Promise<void> {
  const tls = options.tls;
  const p = postgresPaths(config);
  const owner = asServerUser();
  mkdirSync(join(config.stackDir, 'logs'), { recursive: true });
  mkdirSync(join(config.stackDir, 'pg'), { recursive: true });
  ensureOwned(p.dataDir, 'dir', owner);
  ensureOwned(p.socketDir, 'dir', owner);
  ensureOwned(p.logFile, 'file', owner);

  if (!existsSync(join(p.dataDir, 'PG_VERSION'))) {
    log(`initialising a PostgreSQL cluster in ${p.dataDir}`);
    const init = runPgTool(config, 'initdb', ['-D', p.dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8']);
    if (init.status !== 0) {
      throw new StackError(
        'SOUS_STACK_PG_INIT_FAILED',
        `initdb failed: ${init.output.split('\n').slice(-2).join(' | ')}`,
      );
    }
    writeFileSync(join(p.dataDir, 'postgresql.conf'), "\ninclude_if_exists = 'sous.conf'\n", { flag: 'a' });
  }
  // Rewritten on every start so a changed SOUS_PG_PORT takes effect.
  const settings = [
    `port = ${config.pgPort}`,
    "listen_addresses = '127.0.0.1'",
    `unix_socket_directories = '${p.socketDir}'`,
    'wal_level = logical',
    'max_replication_slots = 10',
    'max_wal_senders = 10',
    'max_connections = 300',
    'shared_buffers = 256MB',
    "log_min_messages = 'warning'",
    ...(tls === undefined
      ? []
      : ['ssl = on', "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'", "ssl_ca_file = 'root.crt'"]),
    // Statement counts for `npm run bench` (SQL round trips per step). Loaded at server
    // start; the extension's view is created in the sous database below. track_utility
    // makes BEGIN/COMMIT count, track=top leaves statements inside functions out: what
    // is counted is what a client sent.
    "shared_preload_libraries = 'pg_stat_statements'",
    'pg_stat_statements.track = top',
    'pg_stat_statements.track_utility = on',
    'pg_stat_statements.max = 10000',
  ];
  if (tls !== undefined) installTlsFiles(p.dataDir, tls, owner);
  const confFile = join(p.dataDir, 'sous.conf');
  writeFileSync(confFile, `${settings.join('\n')}\n`);
  if (owner !== undefined) chownSync(confFile, owner.uid, owner.gid);

  if (postgresPid(config) === undefined) {
    await assertPortFree(config.pgPort, 'SOUS_PG_PORT', 'PostgreSQL');
    const start = runPgTool(config, 'pg_ctl', ['-D', p.dataDir, '-l', p.logFile, '-w', '-t', '120', 'start']);
    if (start.status !== 0) {
      throw new StackError(
        'SOUS_STACK_PG_START_FAILED',
        `PostgreSQL did not start: ${tail(p.logFile, 2).replaceAll('\n', ' | ')} (log: ${p.logFile})`,
      );
    }
  }
  let wal: pg.QueryResult<{ wal_level: string }>;
  try {
    wal = await query<{ wal_level: string }>(config, 'postgres', 'SHOW wal_level', tls);
  } catch (error) {
    throw new StackError(
      'SOUS_STACK_PG_UNREACHABLE',
      `PostgreSQL on 127.0.0.1:${config.pgPort} is unreachable (${(error as Error).message}): see ${p.logFile}`,
      { cause: error },
    );
  }
  if (wal.rows[0]?.wal_level !== 'logical') {
    throw new StackError(
      'SOUS_STACK_PG_WAL_LEVEL',
      `PostgreSQL runs with wal_level=${String(wal.rows[0]?.wal_level)}; Debezium needs logical`,
    );
  }
  const user = pg.escapeIdentifier(config.pgUser);
  const role = await query(
    config,
    'postgres',
    `SELECT 1 FROM pg_roles WHERE rolname = ${pg.escapeLiteral(config.pgUser)}`,
    tls,
  );
  if (role.rowCount === 0) await query(config, 'postgres', `CREATE ROLE ${user} LOGIN REPLICATION`, tls);
  // The read-only reporting role (migration 0005 grants it the reporting views). Roles
  // are the cluster's, and sous's own user may not create roles: the superuser does.
  const reporting = await query(config, 'postgres', `SELECT 1 FROM pg_roles WHERE rolname = 'sous_reporting'`, tls);
  if (reporting.rowCount === 0) await query(config, 'postgres', 'CREATE ROLE sous_reporting NOLOGIN', tls);
  // The workers' claim-check role (migration 0016 grants it sous_payload.payload).
  const payloads = await query(config, 'postgres', `SELECT 1 FROM pg_roles WHERE rolname = 'sous_payload_worker'`, tls);
  if (payloads.rowCount === 0) await query(config, 'postgres', 'CREATE ROLE sous_payload_worker NOLOGIN', tls);
  const db = await query(
    config,
    'postgres',
    `SELECT 1 FROM pg_database WHERE datname = ${pg.escapeLiteral(config.pgDatabase)}`,
    tls,
  );
  if (db.rowCount === 0) {
    await query(config, 'postgres', `CREATE DATABASE ${pg.escapeIdentifier(config.pgDatabase)} OWNER ${user}`, tls);
  }
  if (options.userPassword !== undefined) {
    await query(config, 'postgres', `ALTER ROLE ${user} PASSWORD ${pg.escapeLiteral(options.userPassword)}`, tls);
  }
  await ensureStatementStats(config, log, tls);
  log(`postgres   127.0.0.1:${config.pgPort} database ${config.pgDatabase} (log ${p.logFile})`);
}

/**
 * Creates pg_stat_statements in the sous database (as the superuser: the extension needs
 * it). A cluster started before the library was preloaded has no statistics until it
 * restarts; that is said, not failed on: only the bench reads them.
 */
async function ensureStatementStats(
  config: StackConfig,
  log: (line: string) => void,
  tls: PostgresTlsListener | undefined,
): Promise<void> {
  const loaded = await query<{ setting: string }>(
    config,
    'postgres',
    `SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'`,
    tls,
  );
  if (!(loaded.rows[0]?.setting ?? '').split(',').some((l) => l.trim() === 'pg_stat_statements')) {
    log(
      'postgres   runs without pg_stat_statements preloaded (started before it was configured): restart it (npm run stack:down && npm run stack:up) for the bench to count SQL round trips',
    );
    return;
  }
  await query(config, config.pgDatabase, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements', tls);
}

export function stopPostgres(config: StackConfig, { immediate = false }: { immediate?: boolean } = {}): boolean {
  if (postgresPid(config) === undefined) return false;
  const p = postgresPaths(config);
  const stop = runPgTool(config, 'pg_ctl', [
    '-D',
    p.dataDir,
    '-m',
    immediate ? 'immediate' : 'fast',
    '-w',
    '-t',
    '60',
    'stop',
  ]);
  if (stop.status !== 0) {
    throw new StackError('SOUS_STACK_PG_STOP_FAILED', `pg_ctl stop failed: ${stop.output}`);
  }
  return true;
}
