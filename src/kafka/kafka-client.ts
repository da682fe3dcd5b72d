import { Kafka, logLevel, type KafkaConfig, type LogEntry, type logCreator } from 'kafkajs';
import { logger as rootLogger, type Logger } from '../logger.js';
import type { KafkaSecurityOptions } from '../security/config.js';
import { applyRequestQueueIdleFix } from './request-queue-idle-fix.js';

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
  /** TLS and SASL (loadSecurityConfig reads them from SOUS_KAFKA_SSL*, SOUS_KAFKA_SASL_*). @default plaintext */
  readonly security?: KafkaSecurityOptions;
  /** Retries of a failed request or connection before it fails. @default 8 */
  readonly retries?: number;
}

/** kafkajs's ssl and sasl options from sous's security settings. */
function securityConfig(security: KafkaSecurityOptions | undefined): Pick<KafkaConfig, 'ssl' | 'sasl'> {
  if (security === undefined) return {};
  const { ssl, sasl } = security;
  return {
    ...(ssl === undefined || ssl === false
      ? {}
      : {
          ssl:
            ssl === true
              ? true
              : {
                  rejectUnauthorized: ssl.rejectUnauthorized ?? true,
                  ...(ssl.ca === undefined ? {} : { ca: [ssl.ca] }),
                  ...(ssl.cert === undefined ? {} : { cert: ssl.cert }),
                  ...(ssl.key === undefined ? {} : { key: ssl.key }),
                },
        }),
    ...(sasl === undefined
      ? {}
      : sasl.mechanism === 'plain'
        ? { sasl: { mechanism: 'plain', username: sasl.username, password: sasl.password } }
        : sasl.mechanism === 'scram-sha-256'
          ? { sasl: { mechanism: 'scram-sha-256', username: sasl.username, password: sasl.password } }
          : { sasl: { mechanism: 'scram-sha-512', username: sasl.username, password: sasl.password } }),
  };
}

const levels: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/*
 * Broker answers kafkajs logs at error level on the connection although it retries them itself
 * and they pass on a healthy cluster (a coordinator still loading after the broker started, a
 * leader moving): logged as warnings, so a healthy run prints no error.
 */
const RETRIED_BROKER_ERRORS = new Set([
  "The coordinator is loading and hence can't process requests for this group",
  'The coordinator is not available',
  'This is not the correct coordinator for this group',
  'This server is not the leader for that topic-partition',
  'This server does not host this topic-partition',
  'There is no leader for this topic-partition as we are in the middle of a leadership election',
  // A transaction begun right after the previous one ended (the relay's next batch) while
  // the coordinator still writes the previous one's markers: kafkajs retries it.
  'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing',
]);

function pinoLogCreator(log: Logger): logCreator {
  return () =>
    ({ namespace, level, log: entry }: LogEntry) => {
      const { message, ...rest } = entry;
      const retried = level === logLevel.ERROR && RETRIED_BROKER_ERRORS.has(String(rest.error));
      log[retried ? 'warn' : (levels[level] ?? 'info')]({ kafkajs: namespace, ...rest }, message);
    };
}

export function createKafka(options: KafkaClientOptions): Kafka {
  applyRequestQueueIdleFix();
  return new Kafka({
    clientId: options.clientId ?? 'sous',
    brokers: [...options.brokers],
    logLevel: logLevel.WARN,
    logCreator: pinoLogCreator((options.logger ?? rootLogger).child({ component: 'kafkajs' })),
    retry: { initialRetryTime: 100, retries: options.retries ?? 8 },
    ...securityConfig(options.security),
  });
}

export type { Kafka };
