/**
 * Several callers' items applied together, with no added wait.
 *
 * The reply consumer hands each partition's replies to the control plane separately, and
 * each chunk would be one transaction. Decisions are written as sets, so a transaction
 * costs about the same for 5 replies as for 100; what it costs is its fixed part (BEGIN,
 * the lock statement, one statement per table, COMMIT and its WAL flush). The coalescer
 * lets chunks of several partitions share one: at most `maxInFlight` applications run at
 * once, and whatever is submitted while they run goes out together in the next one. A
 * lone chunk on an idle control plane is applied at once (a microtask, never a timer).
 *
 * Combining partitions is safe because replies are keyed by execution: one execution's
 * replies all come from one partition, whose consumer submits its next chunk only after
 * the previous one settled, so their order holds; chunks of different partitions touch
 * different executions. Each caller's promise settles with the application that carried
 * its items: resolved with that application's result, or rejected with its error (the
 * caller then retries its own items alone).
 */
export interface BatchCoalescer<T, R> {
  submit(items: readonly T[]): Promise<R>;
  /** Resolves when nothing is queued or running. */
  drain(): Promise<void>;
}

export interface BatchCoalescerOptions<T, R> {
  /** Applies items of one or more callers together. */
  readonly apply: (items: readonly T[]) => Promise<R>;
  /** Applications running at once (one lets the next batch gather; two overlap deciding with writing). @default 2 */
  readonly maxInFlight?: number;
  /** Most items in one application; a caller's items are never split. @default 500 */
  readonly maxItems?: number;
}

interface Waiting<T, R> {
  readonly items: readonly T[];
  readonly resolve: (result: R) => void;
  readonly reject: (error: unknown) => void;
}

export function createBatchCoalescer<T, R>(options: BatchCoalescerOptions<T, R>): BatchCoalescer<T, R> {
  const maxInFlight = options.maxInFlight ?? 2;
  const maxItems = options.maxItems ?? 500;
  let queue: Waiting<T, R>[] = [];
  let inFlight = 0;
  let scheduled = false;
  const idle: (() => void)[] = [];

  /** The next application: queued callers in order, up to maxItems (always at least one caller). */
  const take = (): Waiting<T, R>[] => {
    let items = 0;
    let count = 0;
    for (const waiting of queue) {
      if (count > 0 && items + waiting.items.length > maxItems) break;
      items += waiting.items.length;
      count++;
    }
    const taken = queue.slice(0, count);
    queue = queue.slice(count);
    return taken;
  };

  const settleIdle = () => {
    if (queue.length === 0 && inFlight === 0) for (const resolve of idle.splice(0)) resolve();
  };

  const run = async (taken: readonly Waiting<T, R>[]): Promise<void> => {
    try {
      const result = await options.apply(taken.flatMap((w) => w.items));
      for (const w of taken) w.resolve(result);
    } catch (error) {
      for (const w of taken) w.reject(error);
    } finally {
      inFlight--;
      pump();
      settleIdle();
    }
  };

  function pump(): void {
    while (inFlight < maxInFlight && queue.length > 0) {
      inFlight++;
      void run(take());
    }
  }

  return {
    submit(items) {
      return new Promise<R>((resolve, reject) => {
        queue.push({ items, resolve, reject });
        if (scheduled) return;
        scheduled = true;
        // A microtask, not a timer: chunks submitted in this same tick go out together.
        queueMicrotask(() => {
          scheduled = false;
          pump();
        });
      });
    },
    drain() {
      if (queue.length === 0 && inFlight === 0) return Promise.resolve();
      return new Promise<void>((resolve) => idle.push(resolve));
    },
  };
}
