import { createRequire } from 'node:module';

/*
 * kafkajs 2.2.4's RequestQueue re-arms a timer after every check of its pending requests,
 * whether any wait or not, and its delay is then negative (Node makes it 1 ms): once a
 * broker connection has had one response, it wakes its process about a thousand times a
 * second for as long as it is open (kafkajs issues 1704 and 1751; on Node 24 it also
 * prints a TimeoutNegativeWarning). kafkajs is no longer released, so the method is
 * replaced here, in the one place sous loads kafkajs: a check is scheduled only while
 * requests wait, at the end of the broker's throttle or after kafkajs's own 10 ms.
 */

/** kafkajs's interval between checks of a queue whose requests wait on in-flight ones. */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

/** The members of kafkajs's RequestQueue the replacement uses. */
interface RequestQueueMembers {
  readonly pending: readonly unknown[];
  readonly throttledUntil: number;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/** The kafkajs release whose RequestQueue this replaces, and the only one it touches. */
export const PATCHED_KAFKAJS_VERSION = '2.2.4';

let applied: boolean | undefined;

/**
 * Replaces RequestQueue.scheduleCheckPendingRequests in the loaded kafkajs, once per
 * process. True when applied; false when the installed kafkajs is another release (its
 * code is then left as it is).
 */
export function applyRequestQueueIdleFix(): boolean {
  if (applied !== undefined) return applied;
  const require = createRequire(import.meta.url);
  const { version } = require('kafkajs/package.json') as { version: string };
  if (version !== PATCHED_KAFKAJS_VERSION) return (applied = false);
  // The same module instance kafkajs itself uses: CommonJS caches it by its path.
  const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as {
    prototype: RequestQueueMembers;
  };
  RequestQueue.prototype.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(
    this: RequestQueueMembers,
  ): void {
    // Nothing waits: a request pushed later is sent at once or schedules its own check.
    if (this.throttleCheckTimeoutId !== null || this.pending.length === 0) return;
    const untilUnthrottled = this.throttledUntil - Date.now();
    this.throttleCheckTimeoutId = setTimeout(
      () => {
        this.throttleCheckTimeoutId = null;
        this.checkPendingRequests();
      },
      untilUnthrottled > 0 ? untilUnthrottled : CHECK_PENDING_REQUESTS_INTERVAL_MS,
    );
  };
  return (applied = true);
}
