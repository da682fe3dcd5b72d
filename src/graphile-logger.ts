import { Logger } from 'graphile-worker';
import { logger } from './logger.js';

/** graphile-worker's logs through the shared pino logger. */
export const graphileLogger = new Logger((scope) => {
  const log = logger.child({ component: 'graphile-worker', ...scope });
  return (level, message, meta) => {
    const method = level === 'error' ? 'error' : level === 'warning' ? 'warn' : level === 'info' ? 'info' : 'debug';
    log[method](meta, message);
  };
});
