import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StackConfig } from './config.js';
import { requireCommand, StackError } from './process.js';

export interface Artifacts {
  /** Folder of broker, Connect runtime and logging jars (the JVM classpath). */
  readonly libs: string;
  /** Connect `plugin.path`: the parent of the Debezium connector folder. */
  readonly plugins: string;
}

function pomPath(config: StackConfig): string {
  return join(config.root, 'connectors', 'pom.xml');
}

/**
 * Resolves Kafka, Kafka Connect, log4j2 and the Debezium PostgreSQL plugin from Maven
 * Central into the jar cache. A marker holding the pom's hash makes a second run
 * download (and even start Maven) nothing; editing the pom resolves again.
 */
export function resolveArtifacts(config: StackConfig, log: (line: string) => void): Artifacts {
  const libs = join(config.jarCache, 'libs');
  const plugins = join(config.jarCache, 'plugins');
  const marker = join(config.jarCache, 'resolved.sha256');
  const pom = pomPath(config);
  const hash = createHash('sha256').update(readFileSync(pom)).digest('hex');
  if (existsSync(marker) && readFileSync(marker, 'utf8').trim() === hash) {
    return { libs, plugins };
  }
  requireCommand('mvn', ['-v'], 'install Apache Maven (apt-get install maven) and make sure `mvn` is on PATH');
  log(`resolving Kafka and Debezium from Maven Central into ${config.jarCache} ...`);
  rmSync(libs, { recursive: true, force: true });
  rmSync(plugins, { recursive: true, force: true });
  // dependency:unpack skips archives its markers say it unpacked before.
  const markers = join(config.jarCache, 'markers');
  rmSync(markers, { recursive: true, force: true });
  mkdirSync(config.jarCache, { recursive: true });
  const mvn = (goal: string, outputDirectory: string) => {
    const result = spawnSync(
      'mvn',
      [
        '-B',
        '-q',
        '-f',
        pom,
        goal,
        '-DincludeScope=runtime',
        `-DoutputDirectory=${outputDirectory}`,
        `-Dsous.markers=${markers}`,
      ],
      { encoding: 'utf8' },
    );
    if (result.status !== 0) {
      const output = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-3).join(' | ');
      throw new StackError('SOUS_STACK_RESOLVE_FAILED', `mvn ${goal} failed (is Maven Central reachable?): ${output}`);
    }
  };
  mvn('dependency:copy-dependencies', libs);
  mvn('dependency:unpack', plugins);
  const pluginDirs = readdirSync(plugins);
  if (!pluginDirs.includes('debezium-connector-postgres')) {
    throw new StackError(
      'SOUS_STACK_RESOLVE_FAILED',
      `the Debezium plugin archive did not unpack to ${plugins}/debezium-connector-postgres (found: ${pluginDirs.join(', ')})`,
    );
  }
  writeFileSync(marker, `${hash}\n`);
  log(`resolved ${readdirSync(libs).length} jars and the Debezium PostgreSQL plugin`);
  return { libs, plugins };
}
