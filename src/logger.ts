import { pino, type Logger } from 'pino';

/** The shared logger. Level from SOUS_LOG_LEVEL. @default 'info' */
export const logger: Logger = pino({
  name: 'sous',
  level: process.env.SOUS_LOG_LEVEL ?? 'info',
});

export type { Logger };
