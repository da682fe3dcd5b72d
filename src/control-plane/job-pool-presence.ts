import pg from 'pg';
import type { Logger } from 'pino';
import { HOLD_JOB_POOL_PRESENCE_SQL } from '../store/job-locks.js';

/**
 * graphile-worker leaves a job locked by a process that died (SIGKILL, out of memory, a lost
 * host) for 4 hours before another process may run it, so a sleep, retry or deadline timer
 * of a crashed control plane would wait that long (the chaos run found one). While a control
 * plane's job pool lives, it holds a session advisory lock named after the pool's id on a
 * connection of its own; PostgreSQL drops the lock when that session ends. Every control
 * plane sweeps (`unlockJobsOfDeadPools`): a job locked for a while by a pool whose lock is
 * free belongs to a dead pool and is handed on.
 *
 * When the connection is lost (PostgreSQL restarted), the lock is taken again on a new one.
 * Until then a sweep may hand on a job this pool still runs; timer jobs tolerate that, as
 * they tolerate graphile-worker's own retries: a timer fired twice is ignored the second time.
 */
export class JobPoolPresence {
  #client: pg.Client | undefined;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(
    /** How to connect: the same TLS and password as the process's other connections. */
    readonly connection: pg.ClientConfig,
    readonly poolId: string,
    readonly log: Logger,
    /** Pause before taking the lock again after the connection is lost. */
    readonly reconnectMs = 1000,
  ) {}

  /** Takes the lock, and takes it again whenever the connection is lost, until `stop()`. */
  start(): void {
    if (this.#stopped) return;
    const client = new pg.Client({ ...this.connection, application_name: 'sous-job-pool-presence' });
    this.#client = client;
    const again = (error?: Error) => {
      if (this.#client !== client || this.#stopped) return;
      this.#client = undefined;
      this.log.warn({ poolId: this.poolId, reason: error?.message }, 'job pool presence lost; taking it again');
      client.end().catch(() => undefined);
      this.#retry = setTimeout(() => {
        this.start();
      }, this.reconnectMs);
      this.#retry.unref();
    };
    client.on('error', again);
    client.on('end', () => {
      again();
    });
    client
      .connect()
      .then(() => client.query(HOLD_JOB_POOL_PRESENCE_SQL, [this.poolId]))
      .catch((error: unknown) => {
        again(error instanceof Error ? error : new Error(String(error)));
      });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }
}
