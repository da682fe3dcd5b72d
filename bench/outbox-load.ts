// Outbox rows for the benches (bench:outbox, bench:latency): written one at a time with their
// commit → consumed latency, or in many transactions from concurrent writers.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { Database } from '../src/db/schema.js';
import { writeOutbox } from '../src/outbox/write-outbox.js';

/** Rows written and awaited before the measured ones, so pool, Debezium and consumer are warm. */
const WARM_UP_ROWS = 20;

/**
 * Commit → consumed latencies (ms), one row at a time: each row is committed in a
 * transaction of its own and awaited in `received` (row id → performance.now() when
 * consumed) before the next is written. `rows` are measured, after the warm-up rows.
 */
export async function oneRowAtATime(
  db: Kysely<Database>,
  { topic, received, rows, filler }: { topic: string; received: Map<string, number>; rows: number; filler: string },
): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < rows + WARM_UP_ROWS; i++) {
    const [id] = await db
      .transaction()
      .execute((trx) =>
        writeOutbox(trx, [
          { topic, key: `k${i % 50}`, aggregateType: 'bench', eventType: 'ping', payload: { i, filler } },
        ]),
      );
    const committed = performance.now();
    if (id === undefined) throw new Error('writeOutbox returned no id');
    const deadline = committed + 30_000;
    while (!received.has(id)) {
      if (performance.now() > deadline) throw new Error(`row ${i} did not arrive within 30 s`);
      await sleep(1); // Node's shortest timer: a shorter delay is raised to 1 ms
    }
    if (i >= WARM_UP_ROWS) latencies.push((received.get(id) ?? committed) - committed);
  }
  return latencies;
}

/**
 * Writes `transactions` transactions of `rowsPerTransaction` rows from `writers` concurrent
 * writers, telling `committed` each transaction's row ids and when it committed
 * (performance.now()). Returns how many rows were written.
 */
export async function writeConcurrently(
  db: Kysely<Database>,
  options: {
    topic: string;
    eventType: string;
    transactions: number;
    rowsPerTransaction: number;
    writers: number;
    filler: string;
    committed?: (ids: string[], at: number) => void;
  },
): Promise<number> {
  const { topic, eventType, transactions, rowsPerTransaction, writers, filler, committed } = options;
  let next = 0;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      for (let t = next++; t < transactions; t = next++) {
        const ids = await db.transaction().execute((trx) =>
          writeOutbox(
            trx,
            Array.from({ length: rowsPerTransaction }, (_, i) => ({
              topic,
              key: `k${i}`,
              aggregateType: 'bench',
              eventType,
              payload: { t, i, filler },
            })),
          ),
        );
        committed?.(ids, performance.now());
      }
    }),
  );
  return transactions * rowsPerTransaction;
}
