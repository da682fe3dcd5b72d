/**
 * Estimates how old the oldest outbox write not yet delivered by the connector is.
 *
 * The outbox table is always empty (each row is deleted in the transaction that wrote
 * it), so its age cannot be read from it. What PostgreSQL does keep is the replication
 * slot's `confirmed_flush_lsn`: the connector has delivered every change before it. So
 * the sampler notes, at each sample, where the WAL ended; when the slot trails, the
 * oldest undelivered change was written after the last noted moment whose WAL end the
 * slot has passed. The estimate is an upper bound, off by at most one sample interval.
 * Idle, Debezium confirms only on its heartbeat (heartbeat.interval.ms), so a quiet
 * system can read up to that interval here while nothing is waiting.
 */
export class WalWatermarks {
  readonly #marks: { at: number; lsn: number }[] = [];

  constructor(private readonly capacity = 1024) {}

  /** Notes that at `at` (ms) the WAL ended at `lsn` (bytes). */
  record(at: number, lsn: number): void {
    const last = this.#marks.at(-1);
    // The WAL did not move: the earlier mark already says everything before it was written by then.
    if (last !== undefined && last.lsn === lsn) return;
    this.#marks.push({ at, lsn });
    if (this.#marks.length > this.capacity) this.#marks.shift();
  }

  /** Seconds since the oldest change past `confirmedLsn` was written (0 when nothing trails). */
  ageSeconds(now: number, currentLsn: number, confirmedLsn: number): number {
    if (confirmedLsn >= currentLsn) return 0;
    // The newest mark the slot has passed: everything after the slot was written after it.
    let passed: { at: number; lsn: number } | undefined;
    for (const mark of this.#marks) {
      if (mark.lsn <= confirmedLsn) passed = mark;
      else break;
    }
    // No mark passed: the change is older than every mark kept.
    const since = passed?.at ?? this.#marks[0]?.at ?? now;
    return Math.max(0, (now - since) / 1000);
  }
}
