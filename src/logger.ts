import { pino, type DestinationStream, type Logger } from 'pino';
import PinoPretty from 'pino-pretty';
import { ConfigInvalidError } from './errors.js';
import { CENSORED, LOG_REDACT_PATHS } from './security/redact.js';

/** `pretty`: coloured one-line entries for a person at a terminal; `json`: one JSON object a line, for machines. */
export type LogFormat = 'json' | 'pretty';

/**
 * The log format: SOUS_LOG_FORMAT when set, otherwise pretty when standard output is a
 * terminal (`npm start` in a shell) and JSON when it is not (a service under a process
 * manager, a container, a pipe), where a log collector reads it.
 */
export function logFormat(env: NodeJS.ProcessEnv = process.env, isTTY: boolean = process.stdout.isTTY): LogFormat {
  const given = env.SOUS_LOG_FORMAT;
  if (given === undefined || given === '') return isTTY ? 'pretty' : 'json';
  if (given === 'json' || given === 'pretty') return given;
  throw new ConfigInvalidError(`SOUS_LOG_FORMAT must be json or pretty (got ${JSON.stringify(given)})`);
}

export interface LoggerOptions {
  /** @default SOUS_LOG_LEVEL, else 'info' */
  readonly level?: string;
  /** @default logFormat() */
  readonly format?: LogFormat;
  /** Where entries go. @default standard output */
  readonly destination?: DestinationStream;
}

/** A sous logger: JSON or pretty (see logFormat), at the given level. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const settings = {
    name: 'sous',
    level: options.level ?? process.env.SOUS_LOG_LEVEL ?? 'info',
    // Secrets logged by mistake (a settings object, a client's options) come out censored.
    redact: { paths: [...LOG_REDACT_PATHS], censor: CENSORED },
  };
  const format = options.format ?? logFormat();
  if (format === 'json')
    return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
  // In-process and synchronous (no transport worker thread): a line is written before
  // the next one is logged and none is lost when the process exits.
  const pretty = PinoPretty({
    sync: true,
    colorize: options.destination === undefined ? PinoPretty.isColorSupported : false,
    translateTime: 'SYS:HH:MM:ss.l',
    singleLine: true,
    ignore: 'pid,hostname,name',
    ...(options.destination === undefined ? {} : { destination: options.destination }),
  });
  return pino(settings, pretty);
}

/** The shared logger. Level from SOUS_LOG_LEVEL (@default 'info'), format from SOUS_LOG_FORMAT (see logFormat). */
export const logger: Logger = createLogger();

export type { Logger };
