import { Logger } from 'graphile-worker';
import { logger } from './logger.js';

/** graphile-worker's logs through the shared pino logger. */
export const graphileLogger = new Logger((scope) => {
  const log = logger.child({ component: 'graphile-worker', ...scope });
  return (level, message, meta) => {
    // LogLevel is a const enum of strings; compared as text, as isolated modules require.
    const name: string = level;
    const method = name === 'error' ? 'error' : name === 'warning' ? 'warn' : name === 'info' ? 'info' : 'debug';
    log[method](meta, message);
  };
});
