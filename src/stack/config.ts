import { resolve } from 'node:path';
import { z } from 'zod';
import { integerVariable, parseEnvironment } from '../env.js';

/**
 * Which stack: a developer's (`npm start`, `npm run stack:*`) or the tests' (`npm test`).
 * They differ in ports and folder, so the tests, which SIGKILL and restart parts of their
 * stack, never touch the one a developer has running.
 */
export type StackProfile = 'dev' | 'test';

/** PostgreSQL major version the stack is made for (the machine's binaries; docker-compose's image). */
export const POSTGRES_MAJOR = 15;

/** Default ports of each profile; the test ones are also those .ci/run sets. */
export const PROFILE_PORTS: Readonly<
  Record<StackProfile, { pg: number; kafka: number; kafkaController: number; connect: number }>
> = {
  dev: { pg: 15432, kafka: 19092, kafkaController: 19093, connect: 18083 },
  test: { pg: 25432, kafka: 29092, kafkaController: 29093, connect: 28083 },
};

/**
 * SOUS_STACK_PROFILE when set; otherwise `test` inside `npm test` (npm_lifecycle_event)
 * and inside a file run by Node's test runner (NODE_TEST_CONTEXT), else `dev`.
 */
export function stackProfile(env: NodeJS.ProcessEnv): StackProfile {
  const given = env.SOUS_STACK_PROFILE;
  if (given === 'dev' || given === 'test') return given;
  if (given !== undefined && given !== '') {
    throw new StackConfigError(
      `invalid stack setting: SOUS_STACK_PROFILE must be dev or test (got ${JSON.stringify(given)})`,
    );
  }
  return env.npm_lifecycle_event === 'test' || env.NODE_TEST_CONTEXT !== undefined ? 'test' : 'dev';
}

/**
 * Settings of the local stack, read once from the environment. Every port is
 * configurable so the stack can sit beside other services on a machine.
 */
export interface StackConfig {
  /** dev or test (SOUS_STACK_PROFILE): chooses the default ports. See stackProfile. */
  readonly profile: StackProfile;
  /** Project root (the folder holding package.json). */
  readonly root: string;
  /** Where resolved jars live. @default `<root>/.cache/jars` (SOUS_JAR_CACHE) */
  readonly jarCache: string;
  /**
   * Where data, logs and pid files of running parts live (SOUS_STACK_DIR).
   * @default `<root>/.cache/stack` on the dev ports, `<root>/.cache/stack-<pgPort>` on any
   * other (the tests', CI's): one folder per stack, so two stacks never share pid files
   */
  readonly stackDir: string;
  /**
   * Hosts clients reach PostgreSQL, Kafka and Connect on: a stack started otherwise
   * (docker compose, seen from a container) is on other hosts. The local stack always
   * listens on 127.0.0.1. @default 127.0.0.1 (SOUS_PG_HOST, SOUS_KAFKA_HOST, SOUS_CONNECT_HOST)
   */
  readonly pgHost: string;
  readonly kafkaHost: string;
  readonly connectHost: string;
  /** Port of the dedicated PostgreSQL cluster. @default 15432, tests 25432 (SOUS_PG_PORT) */
  readonly pgPort: number;
  /** Folder of PostgreSQL server binaries. @default output of `pg_config --bindir` (SOUS_PG_BINDIR) */
  readonly pgBindir: string | undefined;
  /** Database and owning role used by sous. @default `sous` (SOUS_PG_DATABASE, SOUS_PG_USER) */
  readonly pgDatabase: string;
  readonly pgUser: string;
  /** Kafka client listener port. @default 19092, tests 29092 (SOUS_KAFKA_PORT) */
  readonly kafkaPort: number;
  /** KRaft controller listener port. @default 19093, tests 29093 (SOUS_KAFKA_CONTROLLER_PORT) */
  readonly kafkaControllerPort: number;
  /** Kafka Connect REST port. @default 18083, tests 28083 (SOUS_CONNECT_PORT) */
  readonly connectPort: number;
  /** Turn on exactly-once source delivery in Kafka Connect. @default true (SOUS_CONNECT_EXACTLY_ONCE) */
  readonly connectExactlyOnce: boolean;
  /** Heap of each JVM. @default `512m` (SOUS_JVM_HEAP) */
  readonly jvmHeap: string;
}

const port = (name: string, fallback: number) =>
  integerVariable(fallback, {
    min: 1024,
    max: 65535,
    notANumber: `${name} must be a port number`,
    notWhole: `${name} must be an integer`,
    outOfRange: `${name} must be between 1024 and 65535`,
  });

const host = (name: string) =>
  z
    .string()
    .regex(/^[A-Za-z0-9.-]+$/, `${name} must be a host name or an IPv4 address`)
    .default('127.0.0.1');

const envSchema = (ports: (typeof PROFILE_PORTS)[StackProfile]) =>
  z.object({
    SOUS_JAR_CACHE: z.string().min(1).optional(),
    SOUS_PG_HOST: host('SOUS_PG_HOST'),
    SOUS_KAFKA_HOST: host('SOUS_KAFKA_HOST'),
    SOUS_CONNECT_HOST: host('SOUS_CONNECT_HOST'),
    SOUS_STACK_DIR: z.string().min(1).optional(),
    SOUS_PG_PORT: port('SOUS_PG_PORT', ports.pg),
    SOUS_PG_BINDIR: z.string().min(1).optional(),
    SOUS_PG_DATABASE: z
      .string()
      .regex(/^[a-z_][a-z0-9_]*$/, 'SOUS_PG_DATABASE must be a lower-case SQL identifier')
      .default('sous'),
    SOUS_PG_USER: z
      .string()
      .regex(/^[a-z_][a-z0-9_]*$/, 'SOUS_PG_USER must be a lower-case SQL identifier')
      .default('sous'),
    SOUS_KAFKA_PORT: port('SOUS_KAFKA_PORT', ports.kafka),
    SOUS_KAFKA_CONTROLLER_PORT: port('SOUS_KAFKA_CONTROLLER_PORT', ports.kafkaController),
    SOUS_CONNECT_PORT: port('SOUS_CONNECT_PORT', ports.connect),
    SOUS_CONNECT_EXACTLY_ONCE: z
      .enum(['true', 'false'], { error: 'SOUS_CONNECT_EXACTLY_ONCE must be true or false' })
      .default('true'),
    SOUS_JVM_HEAP: z
      .string()
      .regex(/^\d+[mg]$/, 'SOUS_JVM_HEAP must look like 512m or 1g')
      .default('512m'),
  });

/** Thrown when the environment holds an invalid stack setting. */
export class StackConfigError extends Error {
  readonly code = 'SOUS_STACK_CONFIG_INVALID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StackConfigError';
  }
}

const projectRoot = resolve(import.meta.dirname, '..', '..');

export function loadStackConfig(env: NodeJS.ProcessEnv = process.env): StackConfig {
  const profile = stackProfile(env);
  const e = parseEnvironment(
    envSchema(PROFILE_PORTS[profile]),
    env,
    'invalid stack setting',
    (message, options) => new StackConfigError(message, options),
  );
  const ports = [e.SOUS_PG_PORT, e.SOUS_KAFKA_PORT, e.SOUS_KAFKA_CONTROLLER_PORT, e.SOUS_CONNECT_PORT];
  if (new Set(ports).size !== ports.length) {
    throw new StackConfigError(
      `invalid stack setting: SOUS_PG_PORT, SOUS_KAFKA_PORT, SOUS_KAFKA_CONTROLLER_PORT and SOUS_CONNECT_PORT must differ (got ${ports.join(', ')})`,
    );
  }
  const defaultDir = e.SOUS_PG_PORT === PROFILE_PORTS.dev.pg ? 'stack' : `stack-${e.SOUS_PG_PORT}`;
  return {
    profile,
    root: projectRoot,
    jarCache: resolve(e.SOUS_JAR_CACHE ?? resolve(projectRoot, '.cache', 'jars')),
    stackDir: resolve(e.SOUS_STACK_DIR ?? resolve(projectRoot, '.cache', defaultDir)),
    pgHost: e.SOUS_PG_HOST,
    kafkaHost: e.SOUS_KAFKA_HOST,
    connectHost: e.SOUS_CONNECT_HOST,
    pgPort: e.SOUS_PG_PORT,
    pgBindir: e.SOUS_PG_BINDIR,
    pgDatabase: e.SOUS_PG_DATABASE,
    pgUser: e.SOUS_PG_USER,
    kafkaPort: e.SOUS_KAFKA_PORT,
    kafkaControllerPort: e.SOUS_KAFKA_CONTROLLER_PORT,
    connectPort: e.SOUS_CONNECT_PORT,
    connectExactlyOnce: e.SOUS_CONNECT_EXACTLY_ONCE === 'true',
    jvmHeap: e.SOUS_JVM_HEAP,
  };
}

/** Connection string of the sous database on the local stack. */
export function databaseUrl(config: StackConfig): string {
  return `postgres://${config.pgUser}@${config.pgHost}:${config.pgPort}/${config.pgDatabase}`;
}

export function kafkaBrokers(config: StackConfig): string[] {
  return [`${config.kafkaHost}:${config.kafkaPort}`];
}

export function connectUrl(config: StackConfig): string {
  return `http://${config.connectHost}:${config.connectPort}`;
}
