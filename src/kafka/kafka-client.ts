import { Kafka, logLevel, type LogEntry, type logCreator } from 'kafkajs';
import { logger as rootLogger, type Logger } from '../logger.js';

/*
 * Every kafkajs call of sous lives under src/kafka/, so a maintained client can replace
 * kafkajs (whose last release is 2.2.4) in one place.
 */

export interface KafkaClientOptions {
  /** host:port of one or more brokers. */
  readonly brokers: readonly string[];
  /** Client id shown in broker logs and quotas. @default 'sous' */
  readonly clientId?: string;
  /** Where kafkajs logs go. @default the shared pino logger */
  readonly logger?: Logger;
}

const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

function pinoLogCreator(log: Logger): logCreator {
  return () =>
    ({ namespace, level, log: entry }: LogEntry) => {
      const { message, ...rest } = entry;
      log[levels[level] ?? 'info']({ kafkajs: namespace, ...rest }, message);
    };
}

export function createKafka(options: KafkaClientOptions): Kafka {
  return new Kafka({
    clientId: options.clientId ?? 'sous',
    brokers: [...options.brokers],
    logLevel: logLevel.WARN,
    logCreator: pinoLogCreator((options.logger ?? rootLogger).child({ component: 'kafkajs' })),
    retry: { initialRetryTime: 100, retries: 8 },
  });
}

export type { Kafka };
