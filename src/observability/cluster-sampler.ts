import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { readCommandLag, type AdminHandle } from '../kafka/consumer-lag.js';
import type { Logger } from '../logger.js';
import {
  selectActiveExecutionCounts,
  selectOutboxSlot,
  selectPendingDeadLetterCounts,
  selectTimerCounts,
  selectWaitingCommands,
} from '../store/observability.js';
import type { ControlPlaneMetrics } from './control-plane-metrics.js';
import { UNKNOWN_CAPABILITY } from './step-transitions.js';
import { WalWatermarks } from './wal-watermarks.js';
import { withTimeout } from './with-timeout.js';

export interface ClusterSamplerOptions {
  readonly db: Kysely<Database>;
  /** Kafka admin for consumer lag; none: the backlog gauge is not sampled. */
  readonly admin: AdminHandle | undefined;
  readonly metrics: ControlPlaneMetrics;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** The connector's replication slot. */
  readonly slotName: string;
  /** graphile-worker task of engine timers. */
  readonly timerTask: string;
  readonly log: Logger;
}

/**
 * Reads the cluster-wide gauges (backlog, outbox, dead letters, timers, executions) from
 * PostgreSQL and Kafka every interval, each read bounded by a timeout, and sets them.
 *
 * Sampled rather than read on scrape: a scrape then answers at once from memory even
 * while PostgreSQL or Kafka is down (so the counters, which matter most then, still
 * arrive), several Prometheus servers scraping do not multiply the reads, and the
 * outbox age needs a history of WAL positions that only regular samples give. The price
 * is that a gauge is up to one interval old; `sous_sample_last_success_timestamp_seconds`
 * tells how old, and a failed read keeps the last value and counts a failure.
 */
export class ClusterSampler {
  readonly #wal = new WalWatermarks();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(private readonly options: ClusterSamplerOptions) {}

  start(): void {
    this.#stopped = false;
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** One round of reads (tests call it to sample without waiting for the interval). */
  async sampleOnce(): Promise<void> {
    const o = this.options;
    const sources: Record<string, () => Promise<void>> = {
      executions: () => this.#executions(),
      commands_waiting: () => this.#waiting(),
      outbox: () => this.#outbox(),
      dead_letters: () => this.#deadLetters(),
      timers: () => this.#timers(),
      ...(o.admin === undefined ? {} : { command_backlog: () => this.#backlog(o.admin as AdminHandle) }),
    };
    await Promise.all(
      Object.entries(sources).map(async ([source, read]) => {
        try {
          await withTimeout(read(), o.timeoutMs, `sampling ${source}`);
          o.metrics.sampleLastSuccess.set({ source }, Date.now() / 1000);
        } catch (error) {
          o.metrics.sampleFailures.inc({ source });
          o.log.debug({ source, reason: error instanceof Error ? error.message : String(error) }, 'sample failed');
        }
      }),
    );
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.sampleOnce().finally(() => {
        this.#running = undefined;
        this.#schedule(this.options.intervalMs);
      });
    }, delayMs);
    // Sampling never keeps a process alive.
    this.#timer.unref();
  }

  async #executions(): Promise<void> {
    const counts = await selectActiveExecutionCounts(this.options.db);
    for (const status of ['running', 'paused', 'compensating'])
      this.options.metrics.executions.set({ status }, counts.get(status) ?? 0);
  }

  async #waiting(): Promise<void> {
    const rows = await selectWaitingCommands(this.options.db);
    const { commandsWaiting, commandOldestWait } = this.options.metrics;
    const now = Date.now();
    // Reset then set in one tick: a capability with nothing waiting leaves the series.
    commandsWaiting.reset();
    commandOldestWait.reset();
    for (const r of rows) {
      commandsWaiting.set({ capability: r.capability }, r.waiting);
      commandOldestWait.set({ capability: r.capability }, Math.max(0, (now - r.oldestScheduledAt.getTime()) / 1000));
    }
  }

  async #backlog(admin: AdminHandle): Promise<void> {
    const lags = await admin.with(readCommandLag);
    const gauge = this.options.metrics.commandBacklog;
    gauge.reset();
    for (const l of lags) gauge.set({ capability: l.capability }, l.lag);
  }

  async #outbox(): Promise<void> {
    const read = await selectOutboxSlot(this.options.db, this.options.slotName);
    const m = this.options.metrics;
    this.#wal.record(read.at.getTime(), read.currentLsn);
    if (read.slot === undefined) {
      // No connector was ever registered: nothing to say about delivery.
      m.slotActive.reset();
      m.slotLag.reset();
      m.outboxAge.reset();
      return;
    }
    m.slotActive.set(read.slot.active ? 1 : 0);
    m.slotLag.set(Math.max(0, read.currentLsn - read.slot.confirmedLsn));
    m.outboxAge.set(this.#wal.ageSeconds(read.at.getTime(), read.currentLsn, read.slot.confirmedLsn));
  }

  async #deadLetters(): Promise<void> {
    const rows = await selectPendingDeadLetterCounts(this.options.db);
    const gauge = this.options.metrics.deadLetters;
    gauge.reset();
    for (const r of rows) {
      gauge.inc({ capability: r.capability ?? UNKNOWN_CAPABILITY, error_code: r.errorCode }, r.count);
    }
  }

  async #timers(): Promise<void> {
    const counts = await selectTimerCounts(this.options.db, this.options.timerTask);
    this.options.metrics.timersDue.set(counts.due);
    this.options.metrics.timersScheduled.set(counts.scheduled);
  }
}
