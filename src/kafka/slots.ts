/** A request for a slot: granted at once, or a promise that settles when it is. */
export type SlotRequest =
  | { readonly granted: true }
  | {
      readonly granted: false;
      /** Resolves when the slot is handed over. */
      readonly promise: Promise<void>;
      /** Gives up waiting (returning a slot handed over meanwhile). Returns false, for `return waiting.cancel()`. */
      cancel(): false;
    };

interface Waiter {
  granted: boolean;
  cancelled: boolean;
  wake(): void;
}

/** A counting semaphore, first come first served: a released slot goes to the longest waiter. */
export class Slots {
  #free: number;
  readonly #waiters: Waiter[] = [];

  constructor(size: number) {
    this.#free = size;
  }

  acquire(): SlotRequest {
    if (this.#free > 0 && this.#waiters.length === 0) {
      this.#free--;
      return { granted: true };
    }
    let wake: () => void = () => undefined;
    const promise = new Promise<void>((resolve) => {
      wake = resolve;
    });
    const waiter: Waiter = { granted: false, cancelled: false, wake };
    this.#waiters.push(waiter);
    return {
      granted: false,
      promise,
      cancel: () => {
        if (waiter.granted) this.release();
        else waiter.cancelled = true;
        return false;
      },
    };
  }

  release(): void {
    for (let waiter = this.#waiters.shift(); waiter !== undefined; waiter = this.#waiters.shift()) {
      if (waiter.cancelled) continue;
      waiter.granted = true;
      waiter.wake();
      return;
    }
    this.#free++;
  }
}
