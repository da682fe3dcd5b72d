import { CheckTimeoutError } from './errors.js';

/**
 * `work`, or a CheckTimeoutError after `ms`. The work itself is not cancelled (kafkajs
 * and pg calls cannot be): its late outcome is swallowed, so it never surfaces as an
 * unhandled rejection.
 */
export async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new CheckTimeoutError(`${what} did not answer within ${ms} ms`)), ms);
  });
  work.catch(() => undefined);
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
