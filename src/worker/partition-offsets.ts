/**
 * The commit point of one partition while its records finish out of order. Records run
 * concurrently (one slow command must not hold back the next), but the group's offset
 * may only move past a record once it and every record before it are done: the
 * committed offset is the first record still running, or one past the last one when all
 * are done. A crash redelivers everything from there — at least once, never lost.
 *
 * Offsets are kept in arrival order rather than assumed consecutive: a transactional
 * producer (Connect with exactly-once delivery) leaves gaps for its commit markers.
 */
export class PartitionOffsets {
  /** Records delivered and not yet behind the commit point, in offset order. */
  #entries: { offset: bigint; done: boolean }[] = [];
  /** Every offset below this is done. */
  #floor: bigint | undefined;
  #dirty = false;

  /**
   * Registers a delivered record. `new`: process it. `seen`: a redelivery (after a
   * rejoin) of a record already done or in hand here — do not run it again.
   */
  arrive(offset: string): 'new' | 'seen' {
    const o = BigInt(offset);
    if (this.#floor !== undefined && o < this.#floor) return 'seen';
    let i = this.#entries.length;
    while (i > 0 && (this.#entries[i - 1]?.offset ?? -1n) > o) i--;
    if (this.#entries[i - 1]?.offset === o) return 'seen';
    this.#entries.splice(i, 0, { offset: o, done: false });
    this.#floor ??= o;
    return 'new';
  }

  /** Marks a record done; the commit point moves when it was the first one still running. */
  finish(offset: string): void {
    const o = BigInt(offset);
    const entry = this.#entries.find((e) => e.offset === o);
    if (entry === undefined || entry.done) return;
    entry.done = true;
    while (this.#entries[0]?.done === true) {
      const first = this.#entries.shift();
      if (first !== undefined) this.#floor = first.offset + 1n;
    }
    this.#dirty = true;
  }

  /** Records delivered and not done. */
  get running(): number {
    return this.#entries.filter((e) => !e.done).length;
  }

  /** The offset to commit when it moved since the last call, else undefined. */
  takeCommit(): string | undefined {
    if (!this.#dirty) return undefined;
    this.#dirty = false;
    const point = this.#entries[0]?.offset ?? this.#floor;
    return point === undefined ? undefined : point.toString();
  }

  /** Gives back a commit point taken but not committed (the commit failed), to try again later. */
  retryCommit(): void {
    this.#dirty = true;
  }
}
