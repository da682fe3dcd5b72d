import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** The item list a forEach opened. */
export interface ItemList {
  readonly executionId: string;
  readonly forEachKey: string;
  readonly items: readonly unknown[];
}

/** Stores opened item lists of any number of executions in one statement. */
export async function insertForeachItems(trx: Kysely<Database>, lists: readonly ItemList[]): Promise<void> {
  const rows = lists.filter((l) => l.items.length > 0);
  if (rows.length === 0) return;
  await sql`
    INSERT INTO sous.foreach_item (execution_id, step_key, item_index, data)
    SELECT (l->>'executionId')::uuid, l->>'forEachKey', ord - 1, item
    FROM jsonb_array_elements(${JSON.stringify(rows)}::jsonb) AS l,
      jsonb_array_elements(l->'items') WITH ORDINALITY AS t(item, ord)`.execute(trx);
}

/** Items `from` up to `from + count` of a forEach, by index. */
export async function selectItemWindow(
  trx: Kysely<Database>,
  executionId: string,
  forEachKey: string,
  from: number,
  count: number,
): Promise<Map<number, unknown>> {
  const { rows } = await sql<{ item_index: number; data: unknown }>`/* sous:selectItemWindow */
    SELECT item_index, data FROM sous.foreach_item
    WHERE execution_id = ${executionId} AND step_key = ${forEachKey}
      AND item_index >= ${from} AND item_index < ${from + count}`.execute(trx);
  return new Map(rows.map((r) => [r.item_index, r.data]));
}
