// What must hold after the chaos run, each check a list of problems (empty when it holds):
// every execution ended as its recipe must, every side effect was applied exactly once,
// nothing is left in the outbox or the replication slot, the event log equals the state
// tables, and no dead letter appeared.
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import { verifyExecution } from '../src/control-plane/verify.js';
import type { PlanCache } from '../src/control-plane/plan-cache.js';
import type { Database } from '../src/db/schema.js';
import type { WorkloadKind, WorkloadRecipe } from './workload.js';

export interface StartedExecution {
  readonly executionId: string;
  readonly kind: WorkloadKind;
}

export interface InvariantFigures {
  /** Executions by kind and final status. */
  readonly statuses: Record<string, Record<string, number>>;
  /** Executions that did not end as their recipe must. */
  readonly wrongEnd: number;
  readonly effects: number;
  readonly expectedEffects: number;
  readonly duplicatedEffects: number;
  /** Executions whose effects are fewer or more than their recipe applies. */
  readonly executionsWithWrongEffects: number;
  readonly outboxRows: number;
  readonly slotLagBytes: number | null;
  readonly disagreements: number;
  readonly deadLetters: number;
}

export async function checkInvariants(
  db: Kysely<Database>,
  plans: PlanCache,
  workload: readonly WorkloadRecipe[],
  started: readonly StartedExecution[],
  effectTable: string,
  run: string,
  problems: string[],
): Promise<InvariantFigures> {
  const byKind = new Map(workload.map((w) => [w.kind, w]));
  const recipeOf = (kind: WorkloadKind) => {
    const w = byKind.get(kind);
    if (w === undefined) throw new Error(`no recipe of kind ${kind}`);
    return w;
  };

  // Every execution ended as its recipe must.
  const { rows: ends } = await sql<{ id: string; status: string }>`
    SELECT id, status FROM sous.execution WHERE recipe_name LIKE ${`chaos.${run}.%`}`.execute(db);
  const statusOf = new Map(ends.map((r) => [r.id, r.status]));
  if (ends.length !== started.length) problems.push(`${ends.length} executions exist, ${started.length} were started`);
  const statuses: Record<string, Record<string, number>> = {};
  let wrongEnd = 0;
  for (const e of started) {
    const status = statusOf.get(e.executionId) ?? 'missing';
    const kind = (statuses[e.kind] ??= {});
    kind[status] = (kind[status] ?? 0) + 1;
    if (status !== recipeOf(e.kind).status) wrongEnd++;
  }
  if (wrongEnd > 0)
    problems.push(`${wrongEnd} executions did not end as their recipe must: ${JSON.stringify(statuses)}`);

  // Every side effect exactly once, per execution.
  const { rows: effectRows } = await sql<{ execution_id: string; effects: string; distinct_keys: string }>`
    SELECT execution_id, count(*) AS effects, count(DISTINCT idempotency_key) AS distinct_keys
    FROM ${sql.table(`sous_worker.${effectTable}`)} GROUP BY execution_id`.execute(db);
  const effectsOf = new Map(effectRows.map((r) => [r.execution_id, Number(r.distinct_keys)]));
  const effects = effectRows.reduce((sum, r) => sum + Number(r.effects), 0);
  const duplicatedEffects = effectRows.reduce((sum, r) => sum + Number(r.effects) - Number(r.distinct_keys), 0);
  if (duplicatedEffects > 0) problems.push(`${duplicatedEffects} side effects were applied twice`);
  let expectedEffects = 0;
  let executionsWithWrongEffects = 0;
  for (const e of started) {
    const expected = recipeOf(e.kind).effects;
    expectedEffects += expected;
    const applied = effectsOf.get(e.executionId) ?? 0;
    if (applied !== expected) {
      if (executionsWithWrongEffects < 5)
        problems.push(`execution ${e.executionId} (${e.kind}): ${applied} distinct effects, ${expected} expected`);
      executionsWithWrongEffects++;
    }
  }
  if (executionsWithWrongEffects > 0)
    problems.push(`${executionsWithWrongEffects} executions applied too few or too many side effects`);

  const outbox = await sql<{ n: string }>`SELECT count(*) AS n FROM sous.outbox`.execute(db);
  const outboxRows = Number(outbox.rows[0]?.n ?? 0);
  if (outboxRows > 0) problems.push(`${outboxRows} rows left in sous.outbox`);

  // Debezium confirms what it has streamed at its next offset flush / heartbeat: wait for it.
  let slotLagBytes: number | null = null;
  const lagDeadline = Date.now() + 60_000;
  for (;;) {
    const lag = await sql<{ lag: string | null }>`
      SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text AS lag
      FROM pg_replication_slots WHERE database = current_database() AND slot_type = 'logical'
      ORDER BY active DESC LIMIT 1`.execute(db);
    slotLagBytes = lag.rows[0]?.lag == null ? null : Number(lag.rows[0].lag);
    if (slotLagBytes === null || slotLagBytes < 1024 * 1024 || Date.now() > lagDeadline) break;
    await sleep(1000);
  }
  if (slotLagBytes !== null && slotLagBytes >= 1024 * 1024)
    problems.push(`the replication slot lags ${slotLagBytes} bytes behind`);

  let disagreements = 0;
  for (const e of started) {
    const found = await verifyExecution(db, plans, e.executionId);
    if (found.length > 0 && disagreements < 5)
      problems.push(`execution ${e.executionId}: ${JSON.stringify(found.slice(0, 3))}`);
    disagreements += found.length;
  }
  if (disagreements > 0) problems.push(`${disagreements} disagreements between the event log and the state tables`);

  // Each fault is survivable: a dead letter from this run would mean one was not.
  const { rows: letters } = await sql<{ error_code: string; n: string }>`
    SELECT error_code, count(*) AS n FROM sous.dead_letter
    WHERE original_topic LIKE ${`%${run}%`} OR capability LIKE ${`%${run}%`} OR consumer_group LIKE ${`%${run}%`}
    GROUP BY error_code`.execute(db);
  const deadLetters = letters.reduce((sum, r) => sum + Number(r.n), 0);
  if (deadLetters > 0)
    problems.push(`${deadLetters} dead letters: ${letters.map((r) => `${r.error_code} × ${r.n}`).join(', ')}`);

  return {
    statuses,
    wrongEnd,
    effects,
    expectedEffects,
    duplicatedEffects,
    executionsWithWrongEffects,
    outboxRows,
    slotLagBytes,
    disagreements,
    deadLetters,
  };
}
