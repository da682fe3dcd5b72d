import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** What this region holds of a command received from another region (sous.region_inbox). */
export type InboxState = 'dispatched' | 'held' | 'cancelled';

/**
 * Records a received command, in the transaction that sends or holds it. False when its
 * attempt is already known here (a redelivery, or a cancel that came first): the caller
 * then writes nothing, so a record delivered twice has one effect.
 */
export async function claimInboundCommand(
  trx: Kysely<Database>,
  row: { readonly id: string; readonly executionId: string; readonly originRegion: string; readonly state: InboxState },
): Promise<boolean> {
  const inserted = await sql<{ id: string }>`/* sous:claimInboundCommand */
    INSERT INTO sous.region_inbox (id, execution_id, origin_region, state)
    VALUES (${row.id}::uuid, ${row.executionId}::uuid, ${row.originRegion}, ${row.state})
    ON CONFLICT (id) DO NOTHING
    RETURNING id`.execute(trx);
  return inserted.rows.length > 0;
}

/**
 * Marks an attempt cancelled here (whether or not its command arrived yet) and drops its
 * held command. True when this changed something: only then is the cancel passed on to
 * the shards, so a redelivered cancel is not sent again.
 */
export async function cancelInboundCommand(
  trx: Kysely<Database>,
  row: { readonly id: string; readonly executionId: string; readonly originRegion: string },
): Promise<{ readonly changed: boolean; readonly wasHeld: boolean }> {
  const before = await sql<{ state: InboxState }>`/* sous:lockInboundCommand */
    SELECT state FROM sous.region_inbox WHERE id = ${row.id}::uuid FOR UPDATE`.execute(trx);
  const state = before.rows[0]?.state;
  if (state === 'cancelled') return { changed: false, wasHeld: false };
  await sql`/* sous:cancelInboundCommand */
    INSERT INTO sous.region_inbox (id, execution_id, origin_region, state)
    VALUES (${row.id}::uuid, ${row.executionId}::uuid, ${row.originRegion}, 'cancelled')
    ON CONFLICT (id) DO UPDATE SET state = 'cancelled', updated_at = now()`.execute(trx);
  await sql`/* sous:dropHeldInbound */ DELETE FROM sous.waiting_command WHERE id = ${row.id}::uuid`.execute(trx);
  return { changed: true, wasHeld: state === 'held' };
}

/** Held commands of other regions that a shard here took at last (the releaser's transaction). */
export async function markInboundDispatched(trx: Kysely<Database>, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await sql`/* sous:markInboundDispatched */
    UPDATE sous.region_inbox SET state = 'dispatched', updated_at = now()
    WHERE id = ANY(${ids}::uuid[]) AND state = 'held'`.execute(trx);
}

/** The inbox's state of some attempts (tests, operators). */
export async function selectInboxStates(
  db: Kysely<Database>,
  ids: readonly string[],
): Promise<Map<string, InboxState>> {
  if (ids.length === 0) return new Map();
  const rows = await db.selectFrom('sous.region_inbox').select(['id', 'state']).where('id', 'in', ids).execute();
  return new Map(rows.map((r) => [r.id, r.state]));
}

/**
 * Deletes up to `limit` rows received before `before` whose command is no longer held here
 * (a held row stands for a command still to send: it stays until sent or cancelled).
 * Returns how many went.
 */
export async function deleteRegionInboxBefore(db: Kysely<Database>, before: Date, limit: number): Promise<number> {
  const { rows } = await sql<{ n: string }>`
    WITH gone AS (
      DELETE FROM sous.region_inbox WHERE id IN (
        SELECT id FROM sous.region_inbox
        WHERE received_at < ${before} AND state <> 'held'
        ORDER BY received_at LIMIT ${limit})
      RETURNING 1)
    SELECT count(*) AS n FROM gone`.execute(db);
  return Number(rows[0]?.n ?? 0);
}
