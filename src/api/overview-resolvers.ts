// The console's overview (any role: a read): executions per status, the pending
// dead-letter backlog and stuck executions with their reason, read from the reporting_v3
// views the SQL reports use, so the console and an analyst's query agree on "stuck".
import { sql, type Kysely } from 'kysely';
import type { IResolverObject, IResolvers, MercuriusContext } from 'mercurius';
import type { Database } from '../db/schema.js';
import { InvalidArgumentError } from './errors.js';

const STATUSES = ['running', 'paused', 'compensating', 'completed', 'failed', 'cancelled', 'timed_out'] as const;
const MAX_STUCK = 200;

async function executionsByStatus(db: Kysely<Database>): Promise<{ status: string; count: number }[]> {
  const { rows } = await sql<{ status: string; n: string }>`
    SELECT status, count(*) AS n FROM sous.execution GROUP BY status`.execute(db);
  const counts = new Map(rows.map((r) => [r.status, Number(r.n)]));
  return STATUSES.map((status) => ({ status: status.toUpperCase(), count: counts.get(status) ?? 0 }));
}

async function deadLetterBacklog(db: Kysely<Database>): Promise<Record<string, unknown>[]> {
  const { rows } = await sql<Record<string, unknown>>`
    SELECT capability, error_code AS "errorCode", pending::int AS pending, oldest_ingested_at AS "oldestIngestedAt"
    FROM reporting_v3.dead_letter_backlog
    ORDER BY pending DESC, capability`.execute(db);
  return rows;
}

async function stuck(db: Kysely<Database>, first: number): Promise<Record<string, unknown>[]> {
  if (!Number.isInteger(first) || first < 1 || first > MAX_STUCK) {
    throw new InvalidArgumentError(`first must be between 1 and ${MAX_STUCK}, got ${first}`);
  }
  const { rows } = await sql<Record<string, unknown>>`
    SELECT execution_id AS "executionId", recipe_name AS recipe, recipe_version AS version, upper(status) AS status,
      reason, coalesce(waiting_on, '{}') AS "waitingOn", coalesce(wait_reasons, '{}') AS "waitReasons",
      extract(epoch FROM idle_for)::float8 AS "idleSeconds"
    FROM reporting_v3.stuck_executions
    ORDER BY idle_for DESC
    LIMIT ${first}`.execute(db);
  return rows;
}

async function stuckAfterSeconds(db: Kysely<Database>): Promise<number> {
  const { rows } = await sql<{ s: number }>`
    SELECT extract(epoch FROM coalesce(nullif(current_setting('sous.stuck_after', true), ''), '5 minutes')::interval)::float8 AS s`.execute(
    db,
  );
  return rows[0]?.s ?? 300;
}

const resolversOf = {
  Query: {
    // Each field of Overview reads on its own: a console asking only for counts runs one query.
    overview: () => ({}),
  },
  Overview: {
    executionsByStatus: (_o: unknown, _a: unknown, ctx: MercuriusContext) => executionsByStatus(ctx.db),
    deadLetterBacklog: (_o: unknown, _a: unknown, ctx: MercuriusContext) => deadLetterBacklog(ctx.db),
    stuck: (_o: unknown, args: { first?: number | null }, ctx: MercuriusContext) => stuck(ctx.db, args.first ?? 20),
    stuckAfterSeconds: (_o: unknown, _a: unknown, ctx: MercuriusContext) => stuckAfterSeconds(ctx.db),
  },
};

export function withOverviewResolvers(base: IResolvers): IResolvers {
  return {
    ...base,
    Query: { ...(base.Query as IResolverObject | undefined), ...resolversOf.Query },
    Overview: resolversOf.Overview,
  };
}
