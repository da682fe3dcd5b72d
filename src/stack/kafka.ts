import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { Artifacts } from './artifacts.js';
import type { StackConfig } from './config.js';
import { saslSslBrokerProperties, scramFormatArguments, type KafkaSaslSslListener } from './secure.js';
import {
  assertPortFree,
  daemonFiles,
  runningPid,
  startDaemon,
  stopDaemon,
  StackError,
  waitForDaemon,
  type DaemonSpec,
} from './process.js';

export function javaCommand(): string {
  return process.env.JAVA_HOME !== undefined ? join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
}

export function requireJava(): void {
  const result = spawnSync(javaCommand(), ['-version'], { encoding: 'utf8' });
  if (result.error !== undefined) {
    throw new StackError(
      'SOUS_STACK_COMMAND_MISSING',
      'java not found: install a Java 17 runtime (apt-get install openjdk-17-jre-headless) or set JAVA_HOME',
      { cause: result.error },
    );
  }
}

/** log4j2 properties shared by the broker and Connect: INFO to the process's log file. */
export function writeLog4j(config: StackConfig): string {
  const file = join(config.stackDir, 'conf', 'log4j2.properties');
  mkdirSync(join(config.stackDir, 'conf'), { recursive: true });
  writeFileSync(
    file,
    [
      'status = warn',
      'appender.console.type = Console',
      'appender.console.name = STDOUT',
      'appender.console.layout.type = PatternLayout',
      'appender.console.layout.pattern = [%d] %p %m (%c)%n',
      'rootLogger.level = INFO',
      'rootLogger.appenderRef.stdout.ref = STDOUT',
      'logger.kafka.name = org.apache.kafka',
      'logger.kafka.level = WARN',
      'logger.kafkaserver.name = kafka',
      'logger.kafkaserver.level = WARN',
      'logger.state.name = state.change.logger',
      'logger.state.level = WARN',
      'logger.connect.name = org.apache.kafka.connect',
      'logger.connect.level = INFO',
      'logger.debezium.name = io.debezium',
      'logger.debezium.level = INFO',
      '',
    ].join('\n'),
  );
  return file;
}

function kafkaPaths(config: StackConfig) {
  return {
    props: join(config.stackDir, 'conf', 'server.properties'),
    dataDir: join(config.stackDir, 'kafka', 'data'),
    ...daemonFiles(config.stackDir, 'kafka'),
  };
}

function jvmArgs(config: StackConfig, log4j: string): string[] {
  return [
    `-Xms${config.jvmHeap}`,
    `-Xmx${config.jvmHeap}`,
    '-XX:+UseG1GC',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=file:${log4j}`,
  ];
}

/**
 * Runs `mainClass` of the Kafka libraries as a daemon (the broker, or Connect), with the
 * stack's JVM options and `log4j` as its logging configuration.
 */
export function startJvmDaemon(
  config: StackConfig,
  artifacts: Artifacts,
  log4j: string,
  { mainClass, args, ...daemon }: Omit<DaemonSpec, 'command' | 'args'> & { mainClass: string; args: readonly string[] },
): void {
  startDaemon({
    ...daemon,
    command: javaCommand(),
    args: [...jvmArgs(config, log4j), '-cp', join(artifacts.libs, '*'), mainClass, ...args],
  });
}

function brokerReachable(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolvePromise(true);
    });
    socket.once('error', () => resolvePromise(false));
  });
}

export function kafkaPid(config: StackConfig): number | undefined {
  return runningPid(kafkaPaths(config).pidFile);
}

export interface StartKafkaOptions {
  /** Serve clients on a SASL_SSL listener (on SOUS_KAFKA_PORT) instead of plaintext. @default plaintext */
  readonly saslSsl?: KafkaSaslSslListener;
}

/** Formats KRaft storage once and runs a single-node broker+controller on 127.0.0.1. */
export async function startKafka(
  config: StackConfig,
  artifacts: Artifacts,
  log: (line: string) => void,
  options: StartKafkaOptions = {},
): Promise<void> {
  const p = kafkaPaths(config);
  if (kafkaPid(config) !== undefined) {
    log(`kafka      127.0.0.1:${config.kafkaPort} (already running, log ${p.logFile})`);
    return;
  }
  requireJava();
  await assertPortFree(config.kafkaPort, 'SOUS_KAFKA_PORT', 'the Kafka broker');
  await assertPortFree(config.kafkaControllerPort, 'SOUS_KAFKA_CONTROLLER_PORT', 'the KRaft controller');
  mkdirSync(p.dataDir, { recursive: true });
  const log4j = writeLog4j(config);
  writeFileSync(
    p.props,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${config.kafkaControllerPort}`,
      ...(options.saslSsl === undefined
        ? [
            `listeners=PLAINTEXT://127.0.0.1:${config.kafkaPort},CONTROLLER://127.0.0.1:${config.kafkaControllerPort}`,
            `advertised.listeners=PLAINTEXT://127.0.0.1:${config.kafkaPort}`,
            'inter.broker.listener.name=PLAINTEXT',
            'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
          ]
        : saslSslBrokerProperties(options.saslSsl, config.kafkaPort, config.kafkaControllerPort)),
      'controller.listener.names=CONTROLLER',
      `log.dirs=${p.dataDir}`,
      'num.partitions=1',
      // Topics are created deliberately (by sous, or by Connect for outbox rows naming a
      // new topic, with partitions set in the connector), never by a consumer's typo.
      'auto.create.topics.enable=false',
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=10',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'transaction.state.log.num.partitions=10',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      'group.initial.rebalance.delay.ms=0',
      'log.retention.hours=168',
      '',
    ].join('\n'),
  );
  const classpath = join(artifacts.libs, '*');
  if (!existsSync(join(p.dataDir, 'meta.properties'))) {
    const clusterId = randomBytes(16).toString('base64url');
    const format = spawnSync(
      javaCommand(),
      [
        ...jvmArgs(config, log4j),
        '-cp',
        classpath,
        'kafka.tools.StorageTool',
        'format',
        `--cluster-id=${clusterId}`,
        '-c',
        p.props,
        '--ignore-formatted',
        ...(options.saslSsl === undefined ? [] : scramFormatArguments(options.saslSsl)),
      ],
      { encoding: 'utf8' },
    );
    if (format.status !== 0) {
      throw new StackError(
        'SOUS_STACK_KAFKA_FORMAT_FAILED',
        `formatting KRaft storage failed: ${`${format.stdout}${format.stderr}`.trim().split('\n').slice(-2).join(' | ')}`,
      );
    }
  }
  startJvmDaemon(config, artifacts, log4j, {
    mainClass: 'kafka.Kafka',
    args: [p.props],
    logFile: p.logFile,
    pidFile: p.pidFile,
  });
  await waitForDaemon(p, () => brokerReachable(config.kafkaPort), {
    timeoutMs: 90_000,
    code: 'SOUS_STACK_KAFKA_START_FAILED',
    problem: `the Kafka broker did not come up on 127.0.0.1:${config.kafkaPort}`,
  });
  log(`kafka      127.0.0.1:${config.kafkaPort} (controller ${config.kafkaControllerPort}, log ${p.logFile})`);
}

export async function stopKafka(config: StackConfig, signal: NodeJS.Signals = 'SIGTERM'): Promise<boolean> {
  return stopDaemon(kafkaPaths(config).pidFile, { signal, graceMs: 30_000 });
}
