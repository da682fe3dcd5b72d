/**
 * Counts running commands against a limit shared by all of a worker's consumers. Not a
 * queue: a caller that finds no free slot waits for `nextRelease()` and tries again (and
 * can heartbeat its consumer group in between, which a queued promise could not).
 */
export class ConcurrencyLimit {
  readonly limit: number;
  #active = 0;
  #peak = 0;
  #waiters: (() => void)[] = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Slots taken now. */
  get active(): number {
    return this.#active;
  }

  /** Most slots taken at once so far. */
  get peak(): number {
    return this.#peak;
  }

  /** Takes a slot when one is free. */
  tryAcquire(): boolean {
    if (this.#active >= this.limit) return false;
    this.#active++;
    this.#peak = Math.max(this.#peak, this.#active);
    return true;
  }

  release(): void {
    if (this.#active === 0) throw new Error('ConcurrencyLimit released more often than acquired');
    this.#active--;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves at the next release, or after `timeoutMs` (whichever comes first). */
  nextRelease(timeoutMs: number): Promise<void> {
    return new Promise((resolvePromise) => {
      const wake = () => {
        clearTimeout(timer);
        resolvePromise();
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== wake);
        resolvePromise();
      }, timeoutMs);
      this.#waiters.push(wake);
    });
  }
}
