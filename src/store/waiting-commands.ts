import { sql, type Kysely } from 'kysely';
import type { Selectable } from 'kysely';
import type { Database, WaitingCommandTable } from '../db/schema.js';
import type { ContractRange } from '../protocol/shards.js';
import type { OutboxRow } from './outbox.js';

/** A command held back because no live shard can take it, with why. */
export interface WaitingCommandRow {
  /** The outbox row it becomes once a shard can take it (its topic chosen then). */
  readonly outbox: Omit<OutboxRow, 'topic'>;
  readonly executionId: string;
  readonly stepKey: string;
  readonly capability: string;
  readonly region: string | null;
  readonly contract: ContractRange | null;
  readonly reasonCode: string;
  readonly reason: string;
  /** Set for a command of another region's execution (received through the relay): it has no attempt here. */
  readonly originRegion?: string | null;
}

/** Holds commands back, in the decision's transaction; a retried decision holds the same id once. */
export async function insertWaitingCommands(trx: Kysely<Database>, rows: readonly WaitingCommandRow[]): Promise<void> {
  if (rows.length === 0) return;
  const col = <T>(f: (r: WaitingCommandRow) => T) => rows.map(f);
  await sql`/* sous:insertWaitingCommands */
    INSERT INTO sous.waiting_command (id, execution_id, step_key, capability, region, contract_min, contract_max,
      reason_code, reason, aggregate_type, aggregate_id, event_type, payload, headers, traceparent, correlation_id,
      idempotency_key, origin_region)
    SELECT * FROM unnest(
      ${col((r) => r.outbox.id)}::uuid[], ${col((r) => r.executionId)}::uuid[], ${col((r) => r.stepKey)}::text[],
      ${col((r) => r.capability)}::text[], ${col((r) => r.region)}::text[],
      ${col((r) => r.contract?.min ?? null)}::int[], ${col((r) => r.contract?.max ?? null)}::int[],
      ${col((r) => r.reasonCode)}::text[], ${col((r) => r.reason)}::text[],
      ${col((r) => r.outbox.aggregateType)}::text[], ${col((r) => r.outbox.key)}::text[],
      ${col((r) => r.outbox.eventType)}::text[], ${col((r) => r.outbox.payload)}::jsonb[],
      ${col((r) => r.outbox.headers)}::jsonb[], ${col((r) => r.outbox.traceparent)}::text[],
      ${col((r) => r.outbox.correlationId)}::text[], ${col((r) => r.outbox.idempotencyKey)}::text[],
      ${col((r) => r.originRegion ?? null)}::text[]
    )
    ON CONFLICT (id) DO NOTHING`.execute(trx);
}

/** A held command as read back for release. */
export interface HeldCommand extends WaitingCommandRow {
  /** Whether its attempt is still waiting to be sent (false: cancelled, timed out, or the execution ended). */
  readonly stillScheduled: boolean;
}

/**
 * Locks up to `limit` held commands (others' locked ones are skipped: another control
 * plane is releasing them), oldest first, with whether their attempt still wants sending.
 */
export async function lockWaitingCommands(trx: Kysely<Database>, limit: number): Promise<HeldCommand[]> {
  // jsonb columns read back as text: they go into the outbox as they are.
  type Held = Omit<Selectable<WaitingCommandTable>, 'since' | 'payload' | 'headers'> & {
    payload: string;
    headers: string;
    still_scheduled: boolean;
  };
  const result = await sql<Held>`/* sous:lockWaitingCommands */
    SELECT w.id, w.execution_id, w.step_key, w.capability, w.region, w.contract_min, w.contract_max, w.reason_code,
      w.reason, w.aggregate_type, w.aggregate_id, w.event_type, w.payload::text AS payload, w.headers::text AS headers,
      w.traceparent, w.correlation_id, w.idempotency_key, w.origin_region,
      -- Another region's command has no attempt here: held means wanted (a cancel deletes it).
      w.origin_region IS NOT NULL OR EXISTS (
        SELECT FROM sous.step_attempt AS a
        WHERE a.execution_id = w.execution_id AND a.id = w.id AND a.status = 'scheduled'
      ) AS still_scheduled
    FROM sous.waiting_command AS w
    ORDER BY w.since
    LIMIT ${limit}
    FOR UPDATE OF w SKIP LOCKED`.execute(trx);
  return result.rows.map((r) => ({
    outbox: {
      id: r.id,
      aggregateType: r.aggregate_type,
      key: r.aggregate_id,
      eventType: r.event_type,
      payload: r.payload,
      headers: r.headers,
      traceparent: r.traceparent,
      correlationId: r.correlation_id,
      idempotencyKey: r.idempotency_key,
    },
    executionId: r.execution_id,
    stepKey: r.step_key,
    capability: r.capability,
    region: r.region,
    contract:
      r.contract_min === null
        ? null
        : { min: r.contract_min, ...(r.contract_max === null ? {} : { max: r.contract_max }) },
    reasonCode: r.reason_code,
    reason: r.reason,
    originRegion: r.origin_region,
    stillScheduled: r.still_scheduled,
  }));
}

export async function deleteWaitingCommands(trx: Kysely<Database>, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await sql`/* sous:deleteWaitingCommands */ DELETE FROM sous.waiting_command WHERE id = ANY(${ids}::uuid[])`.execute(
    trx,
  );
}

/** Updates the reason of commands still held (the shards changed, but none can take them yet). */
export async function updateWaitReasons(
  trx: Kysely<Database>,
  rows: readonly { readonly id: string; readonly code: string; readonly reason: string }[],
): Promise<void> {
  if (rows.length === 0) return;
  await sql`/* sous:updateWaitReasons */
    UPDATE sous.waiting_command AS w SET reason_code = u.code, reason = u.reason
    FROM unnest(${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.code)}::text[], ${rows.map((r) => r.reason)}::text[])
      AS u (id, code, reason)
    WHERE w.id = u.id AND (w.reason_code <> u.code OR w.reason <> u.reason)`.execute(trx);
}

/** Whether anything is held at all (a cheap probe before a release pass). */
export async function anyWaitingCommand(db: Kysely<Database>): Promise<boolean> {
  const row = await db.selectFrom('sous.waiting_command').select('id').limit(1).executeTakeFirst();
  return row !== undefined;
}

/** What steps of these executions wait for, by attempt id (the API's view of a step). */
export async function selectWaitsOfExecutions(
  db: Kysely<Database>,
  executionIds: readonly string[],
): Promise<{ id: string; execution_id: string; step_key: string; reason_code: string; reason: string; since: Date }[]> {
  if (executionIds.length === 0) return [];
  return db
    .selectFrom('sous.waiting_command')
    .select(['id', 'execution_id', 'step_key', 'reason_code', 'reason', 'since'])
    .where('execution_id', 'in', executionIds)
    .execute();
}
