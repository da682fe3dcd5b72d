// Secure connections end to end, on a private stack of this test's own: a CA and server
// certificate made here with openssl, PostgreSQL with ssl=on and hostssl-only pg_hba
// (scram-sha-256 passwords), a Kafka broker whose only client listener is SASL_SSL
// (SCRAM-SHA-256). A control-plane process and an API process configured by the documented
// variables, an SDK worker and the CLI connect over them and start a recipe; wrong
// passwords, a missing CA and plaintext are refused with coded errors; no password appears
// in any output. Kafka Connect over SASL_SSL (Debezium reading PostgreSQL over TLS) carries
// the commands to the worker so the execution completes; SOUS_SECURE_TEST_CONNECT=false
// leaves it out (about half the file's time) when only the connections are of interest.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { kafkaConnectionFailure } from '../../src/kafka/connection-errors.js';
import { createKafka } from '../../src/kafka/kafka-client.js';
import { loadSecurityConfig } from '../../src/security/config.js';
import { loadStackConfig, type StackConfig } from '../../src/stack/config.js';
import { startConnect, stopConnect } from '../../src/stack/connect.js';
import { resolveArtifacts, startKafka, startPostgres, stopKafka, stopPostgres } from '../../src/stack/stack.js';
import { createWorker, defineCapability, type Worker } from '../../src/worker/index.js';

const dir = mkdtempSync(join(tmpdir(), 'sous-secure-'));
// Run as root, the stack runs PostgreSQL as its own user, which must reach its data below.
chmodSync(dir, 0o755);
const pki = join(dir, 'pki');
const config: StackConfig = loadStackConfig({
  SOUS_STACK_PROFILE: 'test',
  SOUS_STACK_DIR: join(dir, 'stack'),
  SOUS_PG_PORT: process.env.SOUS_SECURE_PG_PORT ?? '22432',
  SOUS_KAFKA_PORT: process.env.SOUS_SECURE_KAFKA_PORT ?? '22092',
  SOUS_KAFKA_CONTROLLER_PORT: process.env.SOUS_SECURE_KAFKA_CONTROLLER_PORT ?? '22093',
  SOUS_CONNECT_PORT: process.env.SOUS_SECURE_CONNECT_PORT ?? '22083',
  SOUS_JVM_HEAP: '384m',
  ...(process.env.SOUS_JAR_CACHE === undefined ? {} : { SOUS_JAR_CACHE: process.env.SOUS_JAR_CACHE }),
  ...(process.env.SOUS_PG_BINDIR === undefined ? {} : { SOUS_PG_BINDIR: process.env.SOUS_PG_BINDIR }),
});
const apiPort = process.env.SOUS_SECURE_API_PORT ?? '22400';
const withConnect = process.env.SOUS_SECURE_TEST_CONNECT !== 'false';
const log = (line: string) => process.stderr.write(`[secure stack] ${line}\n`);

// Distinctive secrets, so a leak is found by a plain search of every output.
const PG_PASSWORD = `pg-${randomBytes(9).toString('hex')}`;
const KAFKA_PASSWORD = `kafka-${randomBytes(9).toString('hex')}`;
const WRONG_PASSWORD = `wrong-${randomBytes(9).toString('hex')}`;
const brokers = `127.0.0.1:${config.kafkaPort}`;
const ca = join(pki, 'ca.pem');

/** A CA, and a server certificate it signs for 127.0.0.1 and localhost, with openssl. */
function makeCertificates(): void {
  mkdirSync(pki, { recursive: true });
  const openssl = (args: string[]) => {
    const run = spawnSync('openssl', args, { cwd: pki, encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`openssl ${args[0]} failed: ${run.stderr}`);
  };
  writeFileSync(
    join(pki, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n',
  );
  const key = ['-newkey', 'rsa:2048', '-nodes'];
  openssl(['req', '-x509', ...key, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=sous test CA']);
  openssl(['req', ...key, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  openssl(
    ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial'].concat([
      '-out',
      'server.pem',
      '-days',
      '2',
      '-extfile',
      'server.ext',
    ]),
  );
  // The broker's PEM keystore: its key, then its certificate.
  writeFileSync(
    join(pki, 'keystore.pem'),
    readFileSync(join(pki, 'server.key'), 'utf8') + readFileSync(join(pki, 'server.pem'), 'utf8'),
  );
  writeFileSync(join(pki, 'pg-password'), `${PG_PASSWORD}\n`, { mode: 0o600 });
}

/** The documented variables of every sous process of this test. */
function secureEnv(overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    ...process.env,
    SOUS_DATABASE_URL: `postgres://${config.pgUser}@127.0.0.1:${config.pgPort}/${config.pgDatabase}`,
    SOUS_DATABASE_PASSWORD_FILE: join(pki, 'pg-password'),
    SOUS_PG_SSL_MODE: 'verify-full',
    SOUS_PG_SSL_CA_FILE: ca,
    SOUS_KAFKA_BROKERS: brokers,
    SOUS_KAFKA_SSL: 'true',
    SOUS_KAFKA_SSL_CA_FILE: ca,
    SOUS_KAFKA_SASL_MECHANISM: 'scram-sha-256',
    SOUS_KAFKA_SASL_USERNAME: 'sous',
    SOUS_KAFKA_SASL_PASSWORD: KAFKA_PASSWORD,
    SOUS_METRICS_PORT: 'off',
    SOUS_LOG_FORMAT: 'json',
    SOUS_LOG_LEVEL: 'info',
    ...overrides,
  };
}

interface Child {
  readonly output: () => string;
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Every output of every process, searched for the secrets at the end. */
const outputs: (() => string)[] = [];
const children: Child[] = [];

function run(
  args: string[],
  env: Record<string, string | undefined>,
  readyLine?: string,
): Child & { ready: Promise<void> } {
  const child = spawn(process.execPath, ['--conditions=sous-source', '--import', 'tsx', ...args], {
    cwd: config.root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (readyLine !== undefined && text.includes(readyLine)) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then((code) => reject(new Error(`${args.join(' ')} exited (${code}): ${text.slice(-2000)}`)));
  });
  ready.catch(() => undefined);
  const handle = {
    output: () => text,
    exited,
    ready,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
  outputs.push(handle.output);
  children.push(handle);
  return handle;
}

/** Runs a process expected to fail, and returns its exit code and output. */
async function refused(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<{ code: number | null; text: string }> {
  const child = run(args, env);
  const timer = setTimeout(() => void child.stop(), 120_000);
  const code = await child.exited;
  clearTimeout(timer);
  return { code, text: child.output() };
}

const sous = (args: string[], env: Record<string, string | undefined>) =>
  refused([join('src', 'cli', 'main.ts'), ...args], { SOUS_CONFIG: join(dir, 'no-config.json'), ...env });

let worker: Worker | undefined;
let adminToken = '';

after(async () => {
  await worker?.stop().catch(() => undefined);
  for (const child of children) await child.stop();
  await stopConnect(config).catch(() => undefined);
  await stopKafka(config).catch(() => undefined);
  try {
    stopPostgres(config, { immediate: true });
  } catch {
    // Already down.
  }
  rmSync(dir, { recursive: true, force: true });
});

before(
  async () => {
    makeCertificates();
    const artifacts = resolveArtifacts(config, log);
    await startPostgres(config, log, {
      tls: { certFile: join(pki, 'server.pem'), keyFile: join(pki, 'server.key'), caFile: ca },
      userPassword: PG_PASSWORD,
    });
    await startKafka(config, artifacts, log, {
      saslSsl: { keystoreFile: join(pki, 'keystore.pem'), caFile: ca, scramUsers: { sous: KAFKA_PASSWORD } },
    });
    // The control plane migrates (so the connector's publication exists before Connect
    // starts). Its password is in the connection string here, the others read it from a file.
    const controlPlane = run(
      ['scripts/control-plane.ts'],
      secureEnv({
        SOUS_DATABASE_URL: `postgres://${config.pgUser}:${PG_PASSWORD}@127.0.0.1:${config.pgPort}/${config.pgDatabase}`,
        SOUS_DATABASE_PASSWORD_FILE: undefined,
      }),
      'control plane ready',
    );
    const api = run(['scripts/api.ts'], secureEnv({ SOUS_API_PORT: apiPort }), 'sous api listening at');
    await Promise.all([controlPlane.ready, api.ready]);
    if (withConnect) {
      await startConnect(config, artifacts, log, {
        kafkaSecurity: { caFile: ca, mechanism: 'SCRAM-SHA-256', username: 'sous', password: KAFKA_PASSWORD },
        pgPassword: PG_PASSWORD,
        connector: { 'database.sslmode': 'verify-full', 'database.sslrootcert': ca },
      });
    }
    // The first admin token straight into PostgreSQL, over TLS with the password file.
    const token = await sous(['token', 'create', 'secure-admin', '--role', 'admin', '--local', '--json'], secureEnv());
    assert.equal(token.code, 0, token.text);
    adminToken = (JSON.parse(token.text) as { token: string }).token;
    // Failing here, not at the file's timeout, lets `after` stop the stack.
  },
  { timeout: 280_000 },
);

describe('secure connections', () => {
  it(`${withConnect ? 'runs' : 'starts'} a recipe over TLS and SASL: control plane, API, SDK worker, CLI`, async () => {
    worker = createWorker({
      brokers: [brokers],
      kafkaSecurity: loadSecurityConfig(secureEnv()).kafka,
      handleSignals: false,
      capabilities: [
        defineCapability({
          name: 'secure.greet',
          input: z.object({ who: z.string() }),
          output: z.string(),
          handler: async ({ who }) => `hello ${who}`,
        }),
      ],
    });
    await worker.start();
    const recipe = join(dir, 'secure.yaml');
    writeFileSync(
      recipe,
      'name: secure.hello\nsteps:\n  - id: greet\n    capability: secure.greet\n    input: { who: input.who }\noutput: outputs.greet\n',
    );
    const cli = secureEnv({ SOUS_API_URL: `http://127.0.0.1:${apiPort}/graphql`, SOUS_TOKEN: adminToken });
    const registered = await sous(['recipe', 'register', recipe], cli);
    assert.equal(registered.code, 0, registered.text);
    const wait = withConnect ? ['--wait'] : [];
    const started = await sous(['start', 'secure.hello', '--input', '{"who": "tls"}', ...wait], cli);
    assert.equal(started.code, 0, started.text);
    assert.match(started.text, /started execution [0-9a-f-]{36}/);
    if (withConnect) assert.match(started.text, /COMPLETED, 1\/1 steps done/);
  });

  it('refuses a wrong Kafka password with SOUS_KAFKA_AUTH_FAILED, and nothing starts', async () => {
    const { code, text } = await refused(
      ['scripts/control-plane.ts'],
      secureEnv({ SOUS_KAFKA_SASL_PASSWORD: WRONG_PASSWORD }),
    );
    assert.equal(code, 1, text);
    assert.match(text, /SOUS_KAFKA_AUTH_FAILED/);
    const sdk = createWorker({
      brokers: [brokers],
      kafkaSecurity: loadSecurityConfig(secureEnv({ SOUS_KAFKA_SASL_PASSWORD: WRONG_PASSWORD })).kafka,
      handleSignals: false,
      capabilities: [
        defineCapability({ name: 'secure.none', input: z.unknown(), output: z.unknown(), handler: async (i) => i }),
      ],
    });
    await assert.rejects(sdk.start(), { code: 'SOUS_KAFKA_AUTH_FAILED' });
    await sdk.stop().catch(() => undefined);
  });

  it('refuses a Kafka client without the CA with SOUS_KAFKA_TLS_FAILED', async () => {
    const kafka = createKafka({
      brokers: [brokers],
      retries: 0,
      security: { ssl: true, sasl: { mechanism: 'scram-sha-256', username: 'sous', password: KAFKA_PASSWORD } },
    });
    const admin = kafka.admin();
    const error = await admin.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    await admin.disconnect();
    assert.equal(kafkaConnectionFailure(error)?.code, 'SOUS_KAFKA_TLS_FAILED', String(error));
  });

  it('refuses PostgreSQL without TLS, without the CA and with a wrong password, with coded errors', async () => {
    writeFileSync(join(pki, 'wrong-password'), WRONG_PASSWORD);
    // At once: each is a process start, slow on a busy machine.
    const [plaintext, noCa, wrong] = await Promise.all([
      refused(['scripts/control-plane.ts'], secureEnv({ SOUS_PG_SSL_MODE: 'disable', SOUS_PG_SSL_CA_FILE: undefined })),
      refused(['scripts/control-plane.ts'], secureEnv({ SOUS_PG_SSL_CA_FILE: undefined })),
      sous(
        ['token', 'create', 'nobody', '--role', 'viewer', '--local'],
        secureEnv({ SOUS_DATABASE_PASSWORD_FILE: join(pki, 'wrong-password') }),
      ),
    ]);
    assert.equal(plaintext.code, 1, plaintext.text);
    assert.match(plaintext.text, /SOUS_PG_TLS_FAILED: PostgreSQL requires TLS/);
    assert.equal(noCa.code, 1, noCa.text);
    assert.match(noCa.text, /SOUS_PG_TLS_FAILED: PostgreSQL's certificate does not verify/);
    assert.equal(wrong.code, 3, wrong.text);
    assert.match(wrong.text, /SOUS_PG_AUTH_FAILED/);
  });

  it('refuses bad settings by name before connecting', async () => {
    const { code, text } = await refused(
      ['scripts/control-plane.ts'],
      secureEnv({ SOUS_KAFKA_SASL_MECHANISM: 'gssapi', SOUS_PG_SSL_CA_FILE: join(dir, 'missing.pem') }),
    );
    assert.equal(code, 1, text);
    assert.match(
      text,
      /SOUS_CONFIG_INVALID: .*SOUS_KAFKA_SASL_MECHANISM: must be one of plain, scram-sha-256, scram-sha-512/,
    );
    assert.match(text, /SOUS_PG_SSL_CA_FILE: cannot read/);
  });

  it('never prints a password: control plane, API and CLI output (and the Connect log)', () => {
    const everything = [
      ...outputs.map((o) => o()),
      ...(withConnect ? [readFileSync(join(config.stackDir, 'logs', 'connect.log'), 'utf8')] : []),
    ];
    for (const secret of [PG_PASSWORD, KAFKA_PASSWORD, WRONG_PASSWORD]) {
      for (const text of everything)
        assert.ok(!text.includes(secret), `a password was printed:\n${text.slice(0, 3000)}`);
    }
  });
});
