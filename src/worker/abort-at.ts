/** setTimeout fires at once for delays past this (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Aborts `controller` with `reason()` at the instant `at` (ms since the epoch), at once
 * when it has passed. Far instants are reached by chained timers. Returns a function
 * that cancels it.
 */
export function abortAt(controller: AbortController, at: number, reason: () => Error): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const left = at - Date.now();
    if (left <= 0) {
      controller.abort(reason());
      return;
    }
    timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    // A pending deadline alone must not keep the process alive.
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
