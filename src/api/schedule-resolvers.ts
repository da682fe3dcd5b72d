// GraphQL fields of scheduled starts: create, pause, resume and delete a schedule
// (OPERATOR, audited like every mutation) and list schedules with their runs (any role).
import type { IResolverObject, IResolvers, MercuriusContext, MercuriusLoaders } from 'mercurius';
import type { ScheduleDefinition } from '../control-plane/schedules.js';
import { scheduleOf, type Schedule } from '../control-plane/schedules.js';
import { selectRuns, selectSchedule, selectSchedules, type ScheduleRunRow } from '../store/schedules.js';
import { isUuid } from '../uuid.js';
import { InvalidArgumentError } from './errors.js';
import { executionsById } from './read-model.js';
import { mutation } from './audit.js';

type Args = Record<string, unknown>;
type Query<P> = { obj: P; params: Args };

/** A schedule as the Schedule type shows it: policies as enum values. */
function scheduleNode(schedule: Schedule) {
  return { ...schedule, overlap: schedule.overlap.toUpperCase(), missedRuns: schedule.missedRuns.toUpperCase() };
}
type ScheduleNode = ReturnType<typeof scheduleNode>;

function runNode(row: ScheduleRunRow) {
  return {
    fireTime: row.fire_time,
    outcome: row.outcome.toUpperCase(),
    catchUp: row.catch_up,
    executionId: row.execution_id,
    error: row.error,
    decidedAt: row.decided_at,
  };
}
type RunNode = ReturnType<typeof runNode>;

function scheduleId(value: unknown): string {
  const id = typeof value === 'string' ? value : '';
  if (!isUuid(id)) throw new InvalidArgumentError(`id: "${id}" is not a schedule id (a UUID)`);
  return id;
}

const first = (value: unknown, fallback: number, max: number): number => {
  const n = typeof value === 'number' ? value : fallback;
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new InvalidArgumentError(`first: must be between 1 and ${max}, got ${n}`);
  }
  return n;
};

/** The GraphQL input as a definition: enum values lower-cased, nulls as absent. */
function definitionOf(input: unknown): ScheduleDefinition {
  const i = (input ?? {}) as Record<string, unknown>;
  const lower = (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : undefined);
  const defined = Object.entries({
    name: i.name,
    recipe: i.recipe,
    version: i.version,
    cron: i.cron,
    timeZone: i.timeZone,
    input: i.input,
    overlap: lower(i.overlap),
    missedRuns: lower(i.missedRuns),
  }).filter(([, v]) => v !== undefined && v !== null);
  return Object.fromEntries(defined) as unknown as ScheduleDefinition;
}

const resolversOf = {
  Query: {
    schedules: async (_root: unknown, args: Args, ctx: MercuriusContext) =>
      (await selectSchedules(ctx.db, first(args.first, 100, 1000))).map((r) => scheduleNode(scheduleOf(r))),
    schedule: async (_root: unknown, args: Args, ctx: MercuriusContext) => {
      const id = typeof args.id === 'string' ? args.id : '';
      const row = isUuid(id) ? await selectSchedule(ctx.db, id) : undefined;
      return row === undefined ? null : scheduleNode(scheduleOf(row));
    },
  },
  Mutation: {
    createSchedule: (_root: unknown, args: Args, ctx: MercuriusContext) =>
      mutation(ctx, 'createSchedule', 'operator', args, async (audit) => {
        const { schedule, created } = await ctx.controlPlane
          .audited(audit)
          .createSchedule(definitionOf(args.schedule), ctx.caller.name);
        return { created, schedule: scheduleNode(schedule) };
      }),
    pauseSchedule: (_root: unknown, args: Args, ctx: MercuriusContext) =>
      mutation(ctx, 'pauseSchedule', 'operator', args, async (audit) =>
        scheduleNode(await ctx.controlPlane.audited(audit).pauseSchedule(scheduleId(args.id))),
      ),
    resumeSchedule: (_root: unknown, args: Args, ctx: MercuriusContext) =>
      mutation(ctx, 'resumeSchedule', 'operator', args, async (audit) =>
        scheduleNode(await ctx.controlPlane.audited(audit).resumeSchedule(scheduleId(args.id))),
      ),
    deleteSchedule: (_root: unknown, args: Args, ctx: MercuriusContext) =>
      mutation(ctx, 'deleteSchedule', 'operator', args, (audit) =>
        ctx.controlPlane.audited(audit).deleteSchedule(scheduleId(args.id)),
      ),
  },
} satisfies IResolvers;

/** Batched: one query per field per request, however many schedules or runs. */
const loadersOf = {
  Schedule: {
    lastRun: async (queries: Query<ScheduleNode>[], ctx: MercuriusContext) => {
      const rows = await selectRuns(
        ctx.db,
        queries.map((q) => q.obj.id),
        1,
      );
      return queries.map((q) => {
        const row = rows.find((r) => r.schedule_id === q.obj.id);
        return row === undefined ? null : runNode(row);
      });
    },
    runs: async (queries: Query<ScheduleNode>[], ctx: MercuriusContext) => {
      const most = Math.max(...queries.map((q) => first(q.params.first, 20, 1000)));
      const rows = await selectRuns(
        ctx.db,
        queries.map((q) => q.obj.id),
        most,
      );
      return queries.map((q) =>
        rows
          .filter((r) => r.schedule_id === q.obj.id)
          .slice(0, first(q.params.first, 20, 1000))
          .map(runNode),
      );
    },
  },
  ScheduleRun: {
    execution: async (queries: Query<RunNode>[], ctx: MercuriusContext) => {
      const ids = queries.flatMap((q) => (q.obj.executionId === null ? [] : [q.obj.executionId]));
      const found = await executionsById(ctx.db, [...new Set(ids)]);
      return queries.map((q) => (q.obj.executionId === null ? null : (found.get(q.obj.executionId) ?? null)));
    },
  },
};

export function withScheduleResolvers(base: IResolvers): IResolvers {
  return {
    ...base,
    Query: { ...(base.Query as IResolverObject | undefined), ...resolversOf.Query },
    Mutation: { ...(base.Mutation as IResolverObject | undefined), ...resolversOf.Mutation },
  };
}

export function withScheduleLoaders(base: MercuriusLoaders): MercuriusLoaders {
  return { ...base, ...loadersOf };
}
