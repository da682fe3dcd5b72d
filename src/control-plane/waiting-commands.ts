import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logger.js';
import type { Route, StepNeeds } from '../shards/route.js';
import { insertOutboxRows, type OutboxRow } from '../store/outbox.js';
import {
  anyWaitingCommand,
  deleteWaitingCommands,
  lockWaitingCommands,
  updateWaitReasons,
} from '../store/waiting-commands.js';
import { markInboundDispatched } from '../store/region-inbox.js';

export interface ReleaseReport {
  /** Commands moved to the outbox: a shard can take them now. */
  readonly sent: number;
  /** Commands dropped: their attempt no longer wants sending (cancelled, timed out, execution ended). */
  readonly dropped: number;
  /** Commands still held. */
  readonly held: number;
}

/**
 * Sends the held commands a live shard can take now: in one transaction per batch, each
 * leaves sous.waiting_command and enters the outbox (so a crash in between loses or
 * doubles nothing, and a retry finds what is left). Several control planes may release
 * at once: rows another one holds locked are skipped.
 */
export async function releaseWaitingCommands(
  db: Kysely<Database>,
  route: (needs: StepNeeds) => Route,
  batchSize = 500,
): Promise<ReleaseReport> {
  let sent = 0;
  let dropped = 0;
  let held = 0;
  for (;;) {
    const batch = await db.transaction().execute(async (trx) => {
      const rows = await lockWaitingCommands(trx, batchSize);
      const out: OutboxRow[] = [];
      const gone: string[] = [];
      const inbound: string[] = [];
      const stillWaiting: { id: string; code: string; reason: string }[] = [];
      for (const row of rows) {
        if (!row.stillScheduled) {
          gone.push(row.outbox.id);
          continue;
        }
        const decision = route({
          capability: row.capability,
          ...(row.region === null ? {} : { region: row.region }),
          ...(row.contract === null ? {} : { contract: row.contract }),
        });
        if (decision.kind === 'send') {
          out.push({ ...row.outbox, topic: decision.topic });
          gone.push(row.outbox.id);
          if (row.originRegion !== null && row.originRegion !== undefined) inbound.push(row.outbox.id);
        } else {
          stillWaiting.push({ id: row.outbox.id, code: decision.code, reason: decision.reason });
        }
      }
      await deleteWaitingCommands(trx, gone);
      await insertOutboxRows<Database>(trx, out);
      await markInboundDispatched(trx, inbound);
      await updateWaitReasons(trx, stillWaiting);
      return { rows: rows.length, sent: out.length, dropped: gone.length - out.length, held: stillWaiting.length };
    });
    sent += batch.sent;
    dropped += batch.dropped;
    held += batch.held;
    // A full batch of which something moved: there may be more behind it.
    if (batch.rows < batchSize || batch.sent + batch.dropped === 0) break;
  }
  return { sent, dropped, held };
}

/**
 * Releases held commands when the shards change and on a sweep (a command held by a
 * decision that raced a shard's arrival, or by another control plane). One pass at a
 * time; a change during a pass makes one more pass after it.
 */
export class WaitingCommandReleaser {
  #running: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly route: (needs: StepNeeds) => Route,
    private readonly sweepMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.#stopped = false;
    this.#schedule();
  }

  /** A pass soon (the shards changed). */
  poke(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = this.#pass().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.poke();
      }
    });
  }

  /** Waits for the pass in progress (tests). */
  async settled(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.settled();
  }

  async #pass(): Promise<void> {
    try {
      if (!(await anyWaitingCommand(this.db))) return;
      const report = await releaseWaitingCommands(this.db, this.route);
      if (report.sent > 0 || report.dropped > 0) this.log.info(report, 'held commands released');
    } catch (error) {
      this.log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'held commands not released');
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.poke();
      this.#schedule();
    }, this.sweepMs);
    this.#timer.unref();
  }
}
