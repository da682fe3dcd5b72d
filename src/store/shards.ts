import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';

/** A shard as mirrored for SQL (times as ISO strings when written). */
export interface ShardMirrorRow {
  readonly shardId: string;
  readonly service: string;
  readonly instance: string;
  readonly incarnation: string;
  readonly region: string | null;
  readonly capabilities: readonly { readonly name: string; readonly version: number }[];
  readonly health: 'healthy' | 'degraded' | 'draining';
  readonly reason: string | null;
  readonly inFlight: number;
  readonly concurrency: number;
  readonly heartbeatIntervalMs: number;
  readonly firstSeenAt: string;
  readonly lastHeartbeatAt: string;
}

/**
 * Writes the live shards to sous.shard in one statement. Several control planes mirror
 * the same registry: a row only moves forward (an older heartbeat never overwrites a
 * newer one), so they agree whatever the order of their writes.
 */
export async function upsertShards(db: Kysely<Database>, rows: readonly ShardMirrorRow[]): Promise<void> {
  if (rows.length === 0) return;
  const col = <T>(f: (r: ShardMirrorRow) => T) => rows.map(f);
  await sql`/* sous:upsertShards */
    INSERT INTO sous.shard AS s (shard_id, service, instance, incarnation, region, capabilities, health, reason,
      in_flight, concurrency, heartbeat_interval_ms, first_seen_at, last_heartbeat_at, gone_at, updated_at)
    SELECT u.*, NULL::timestamptz, now() FROM unnest(
      ${col((r) => r.shardId)}::text[], ${col((r) => r.service)}::text[], ${col((r) => r.instance)}::text[],
      ${col((r) => r.incarnation)}::text[], ${col((r) => r.region)}::text[],
      ${col((r) => JSON.stringify(r.capabilities))}::jsonb[], ${col((r) => r.health)}::text[],
      ${col((r) => r.reason)}::text[], ${col((r) => r.inFlight)}::int[], ${col((r) => r.concurrency)}::int[],
      ${col((r) => r.heartbeatIntervalMs)}::int[], ${col((r) => r.firstSeenAt)}::timestamptz[],
      ${col((r) => r.lastHeartbeatAt)}::timestamptz[]
    ) AS u
    ON CONFLICT (shard_id) DO UPDATE SET
      service = excluded.service, instance = excluded.instance, incarnation = excluded.incarnation,
      region = excluded.region, capabilities = excluded.capabilities, health = excluded.health,
      reason = excluded.reason, in_flight = excluded.in_flight, concurrency = excluded.concurrency,
      heartbeat_interval_ms = excluded.heartbeat_interval_ms,
      first_seen_at = least(s.first_seen_at, excluded.first_seen_at),
      last_heartbeat_at = excluded.last_heartbeat_at, gone_at = NULL, updated_at = now(),
      -- A new incarnation under the same id is a new process: an old drain request is not its own.
      drain_requested_at = CASE WHEN s.incarnation = excluded.incarnation THEN s.drain_requested_at END,
      drain_requested_by = CASE WHEN s.incarnation = excluded.incarnation THEN s.drain_requested_by END
    WHERE s.last_heartbeat_at <= excluded.last_heartbeat_at`.execute(db);
}

/**
 * Marks shards gone (they said goodbye or fell silent) and forgets those gone longer
 * than `keepGoneFor` ago. A shard heard of again later is simply upserted live.
 */
export async function markShardsGone(
  db: Kysely<Database>,
  gone: readonly { readonly shardId: string; readonly lastHeartbeatAt: string }[],
  keepGoneFor: string = '1 day',
): Promise<void> {
  if (gone.length > 0) {
    await sql`/* sous:markShardsGone */
      UPDATE sous.shard AS s SET health = 'gone', gone_at = coalesce(s.gone_at, now()), in_flight = 0, updated_at = now()
      FROM unnest(${gone.map((g) => g.shardId)}::text[], ${gone.map((g) => g.lastHeartbeatAt)}::timestamptz[]) AS g (id, seen)
      WHERE s.shard_id = g.id AND s.last_heartbeat_at <= g.seen`.execute(db);
  }
  await sql`/* sous:forgetGoneShards */
    DELETE FROM sous.shard WHERE health = 'gone' AND gone_at < now() - ${keepGoneFor}::interval`.execute(db);
}

/** Records an operator's drain request on the mirror (the shard's own announcement says when it drains). */
export async function recordDrainRequest(
  db: Kysely<Database>,
  shardId: string,
  requestedBy: string | null,
  draining: boolean,
): Promise<void> {
  await db
    .updateTable('sous.shard')
    .set(
      draining
        ? { drain_requested_at: new Date(), drain_requested_by: requestedBy }
        : { drain_requested_at: null, drain_requested_by: null },
    )
    .where('shard_id', '=', shardId)
    .execute();
}

/** Drain requests on the mirror, by shard id (the view in memory does not hold them). */
export async function selectDrainRequests(
  db: Kysely<Database>,
): Promise<Map<string, { readonly at: Date; readonly by: string | null }>> {
  const rows = await db
    .selectFrom('sous.shard')
    .select(['shard_id', 'drain_requested_at', 'drain_requested_by'])
    .where('drain_requested_at', 'is not', null)
    .execute();
  return new Map(
    rows.flatMap((r) =>
      r.drain_requested_at === null ? [] : [[r.shard_id, { at: r.drain_requested_at, by: r.drain_requested_by }]],
    ),
  );
}
