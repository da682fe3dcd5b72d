// The stack command as a person runs it: idempotent `up`, one-line errors for what they must fix.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resolveArtifacts } from '../../src/stack/artifacts.js';
import { loadStackConfig } from '../../src/stack/config.js';
import { stackStatus } from '../../src/stack/stack.js';
import { stackConfig } from '../helpers/stack.js';

function stack(command: string, env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', join('scripts', 'stack.ts'), command], {
    cwd: stackConfig.root,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 300_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.trim() };
}

/** A JAVA_HOME that works, for runs that take `java` off PATH. */
const javaHome = dirname(
  dirname(realpathSync(spawnSync('sh', ['-c', 'command -v java'], { encoding: 'utf8' }).stdout.trim())),
);

describe('stack command', () => {
  let server: Server;
  let takenPort = 0;
  before(async () => {
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    takenPort = typeof address === 'object' && address !== null ? address.port : 0;
  });
  after(async () => new Promise<void>((resolve) => server.close(() => resolve())));

  it('up is idempotent: a second run starts nothing and downloads nothing', () => {
    const before = stackStatus(stackConfig);
    const run = stack('up');
    assert.equal(run.status, 0, run.stderr);
    assert.doesNotMatch(run.stdout, /resolving/);
    assert.match(run.stdout, /connector sous-outbox RUNNING/);
    assert.deepEqual(stackStatus(stackConfig), before, 'the same processes still run');
  });

  it('says in one line which port is taken and how to choose another', () => {
    const run = stack('up', {
      SOUS_STACK_DIR: mkdtempSync(join(tmpdir(), 'sous-stack-')),
      SOUS_PG_PORT: String(takenPort),
      SOUS_KAFKA_PORT: '29092',
      SOUS_KAFKA_CONTROLLER_PORT: '29093',
      SOUS_CONNECT_PORT: '28083',
    });
    assert.equal(run.status, 1);
    assert.equal(
      run.stderr,
      `[stack] error: port ${takenPort} for PostgreSQL is already taken by another process: stop that process or choose another port with SOUS_PG_PORT=<port>`,
    );
  });

  it('says in one line that java is missing', () => {
    const run = stack('up', {
      JAVA_HOME: '/nonexistent-jdk',
      SOUS_STACK_DIR: mkdtempSync(join(tmpdir(), 'sous-stack-')),
    });
    assert.equal(run.status, 1);
    assert.equal(
      run.stderr,
      '[stack] error: java not found: install a Java 17 runtime (apt-get install openjdk-17-jre-headless) or set JAVA_HOME',
    );
  });

  it('says in one line that mvn is missing when jars must be resolved', () => {
    const run = stack('up', {
      PATH: '/nonexistent',
      JAVA_HOME: javaHome,
      SOUS_JAR_CACHE: mkdtempSync(join(tmpdir(), 'sous-jars-')),
      SOUS_STACK_DIR: mkdtempSync(join(tmpdir(), 'sous-stack-')),
    });
    assert.equal(run.status, 1);
    assert.equal(
      run.stderr,
      '[stack] error: mvn not found: install Apache Maven (apt-get install maven) and make sure `mvn` is on PATH',
    );
  });

  it('resolves the Debezium plugin into a new jar cache even where an earlier resolution left its markers', () => {
    // Maven's dependency:unpack skips an archive its markers say it unpacked; the plugin's
    // default marker folder (connectors/target) outlives the jar cache (rm -rf .cache).
    const stale = join(stackConfig.root, 'connectors', 'target', 'dependency-maven-plugin-markers');
    mkdirSync(stale, { recursive: true });
    writeFileSync(join(stale, 'io.debezium-debezium-connector-postgres-tar.gz-plugin-3.4.0.Final.marker'), '');
    const config = loadStackConfig({ ...process.env, SOUS_JAR_CACHE: mkdtempSync(join(tmpdir(), 'sous-jars-')) });
    try {
      const artifacts = resolveArtifacts(config, () => undefined);
      assert.ok(existsSync(join(artifacts.plugins, 'debezium-connector-postgres')), 'the plugin is unpacked');
    } finally {
      rmSync(config.jarCache, { recursive: true, force: true });
    }
  });

  it('rejects an invalid setting by name, starting nothing', () => {
    const run = stack('up', { SOUS_KAFKA_PORT: 'ninety' });
    assert.equal(run.status, 1);
    assert.match(
      run.stderr,
      /^\[stack\] error: invalid stack setting: SOUS_KAFKA_PORT: SOUS_KAFKA_PORT must be a port number$/,
    );
  });
});
