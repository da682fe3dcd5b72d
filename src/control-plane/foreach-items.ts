import { sql, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import type { ItemSource, OpenedItems } from '../engine/item-source.js';

/** Items read per query: a decision dispatching item n usually dispatches n+1.. next. */
const WINDOW = 64;

/**
 * Reads an execution's forEach items from sous.foreach_item inside the decision's
 * transaction, a window at a time, caching what it read for the rest of the decision.
 */
export function postgresItemSource(trx: Transaction<Database>, executionId: string): ItemSource {
  const cache = new Map<string, Map<number, unknown>>();
  return {
    async get(forEachKey, index) {
      let known = cache.get(forEachKey);
      if (known?.has(index) === true) return known.get(index);
      const { rows } = await sql<{ item_index: number; data: unknown }>`
        SELECT item_index, data FROM sous.foreach_item
        WHERE execution_id = ${executionId} AND step_key = ${forEachKey}
          AND item_index >= ${index} AND item_index < ${index + WINDOW}`.execute(trx);
      if (known === undefined) {
        known = new Map();
        cache.set(forEachKey, known);
      }
      for (const row of rows) known.set(row.item_index, row.data);
      return known.get(index);
    },
    async finished(stepIds) {
      const { rows } = await sql<{ step_key: string; output: unknown }>`
        SELECT step_key, output FROM sous.step
        WHERE execution_id = ${executionId} AND step_id = ANY(${stepIds}::text[]) AND item_index IS NOT NULL
          AND NOT compensation AND status IN ('completed', 'skipped')`.execute(trx);
      return new Map(rows.map((r) => [r.step_key, r.output]));
    },
  };
}

/** Stores the item lists a decision opened; a forEach opens once, so a row is written once. */
export async function writeOpenedItems(
  trx: Transaction<Database>,
  executionId: string,
  opened: readonly OpenedItems[],
): Promise<void> {
  for (const { forEachKey, items } of opened) {
    if (items.length === 0) continue;
    await sql`
      INSERT INTO sous.foreach_item (execution_id, step_key, item_index, data)
      SELECT ${executionId}, ${forEachKey}, ord - 1, item
      FROM jsonb_array_elements(${JSON.stringify(items)}::jsonb) WITH ORDINALITY AS t(item, ord)`.execute(trx);
  }
}
