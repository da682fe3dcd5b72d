import type { Context } from '@opentelemetry/api';
import type { Kysely } from 'kysely';
import type { IResolvers, MercuriusContext, MercuriusLoaders } from 'mercurius';
import mercurius from 'mercurius';

const { withFilter } = mercurius;
import type { ControlPlane } from '../control-plane/control-plane.js';
import { ExecutionNotFoundError } from '../control-plane/errors.js';
import type { DeadLetterSelection } from '../control-plane/dead-letters.js';
import type { Database } from '../db/schema.js';
import { parseDuration } from '../recipe/duration.js';
import { compileRecipe } from '../recipe/schema.js';
import { parseRecipeYaml } from '../recipe/parse-yaml.js';
import { isUuid } from '../uuid.js';
import { mutation } from './audit.js';
import { createApiToken, revokeApiToken, type Caller, type Role } from './auth.js';
import { InvalidArgumentError } from './errors.js';
import { traceparentOf } from '../observability/trace-context.js';
import type { ExecutionChange } from './notifications.js';
import {
  attemptsOf,
  bucketsOf,
  eventsOf,
  handlerFailuresOf,
  executionsById,
  listDeadLetters,
  listExecutions,
  recipeNames,
  recipeVersions,
  stepsOf,
  type DeadLetterFilter,
  type ExecutionFilter,
  type ExecutionNode,
  type RecipeVersionNode,
  type StepNode,
} from './read-model.js';

/** What every resolver gets besides mercurius's own context. */
export interface ApiContext {
  readonly caller: Caller;
  readonly db: Kysely<Database>;
  readonly controlPlane: ControlPlane;
  /** The request's trace context (its SERVER span): what a mutation's work is a child of. */
  readonly trace: Context;
}

declare module 'mercurius' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- module augmentation must be an interface
  interface MercuriusContext extends ApiContext {}
}

type Args = Record<string, unknown>;

const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const int = (value: unknown): number | undefined => (typeof value === 'number' ? value : undefined);

function executionId(value: unknown, argument: string): string {
  const id = str(value) ?? '';
  if (!isUuid(id)) throw new InvalidArgumentError(`${argument}: "${id}" is not an execution id (a UUID)`);
  return id;
}

async function loadExecution(ctx: ApiContext, id: string): Promise<ExecutionNode> {
  const node = (await executionsById(ctx.db, [id])).get(id);
  if (node === undefined) throw new ExecutionNotFoundError(`no execution ${id}`);
  return node;
}

export function deadLetterSelection(args: Args): DeadLetterSelection {
  const ids = Array.isArray(args.ids) ? args.ids.map(String) : undefined;
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- args are unknown; GraphQL validated their shape
  const filter = (args.filter ?? undefined) as DeadLetterFilter | undefined;
  if ((ids === undefined) === (filter === undefined)) {
    throw new InvalidArgumentError('give either ids or filter (exactly one of them)');
  }
  if (ids !== undefined) {
    if (ids.length === 0) throw new InvalidArgumentError('ids must not be empty');
    return { ids };
  }
  if (filter?.status != null && filter.status !== 'PENDING') {
    throw new InvalidArgumentError('filter.status: only PENDING dead letters can be reprocessed or discarded');
  }
  if (filter?.executionId != null && !isUuid(filter.executionId)) {
    throw new InvalidArgumentError(`filter.executionId: "${filter.executionId}" is not an execution id (a UUID)`);
  }
  return {
    ...(filter?.capability == null ? {} : { capability: filter.capability }),
    ...(filter?.errorCode == null ? {} : { errorCode: filter.errorCode }),
    ...(filter?.originalTopic == null ? {} : { originalTopic: filter.originalTopic }),
    ...(filter?.executionId == null ? {} : { executionId: filter.executionId }),
  };
}

export const resolvers: IResolvers = {
  Query: {
    me: (_root, _args, ctx) => ({ name: ctx.caller.name, role: ctx.caller.role.toUpperCase() }),
    execution: async (_root, args: Args, ctx) => {
      const id = str(args.id) ?? '';
      return isUuid(id) ? ((await executionsById(ctx.db, [id])).get(id) ?? null) : null;
    },
    executions: (_root, args: Args, ctx) =>
      listExecutions(
        ctx.db,
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- args are unknown; GraphQL validated their shape
        (args.filter ?? {}) as ExecutionFilter,
        int(args.first) ?? 50,
        str(args.after),
      ),
    recipes: (_root, _args, ctx) => recipeNames(ctx.db),
    recipe: async (_root, args: Args, ctx) => (await recipeNames(ctx.db, str(args.name)))[0] ?? null,
    compensationPlan: async (_root, args: Args, ctx) => {
      const id = executionId(args.execution, 'execution');
      const view = await ctx.controlPlane.compensationPlan(id);
      return view === undefined ? null : { ...view, status: view.status.toUpperCase() };
    },
    deadLetters: (_root, args: Args, ctx) =>
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- args are unknown; GraphQL validated their shape
      listDeadLetters(ctx.db, (args.filter ?? {}) as DeadLetterFilter, int(args.first) ?? 100, {
        // DateTime arguments arrive as ISO strings (the scalar parsed them).
        after: str(args.ingestedAfter),
        before: str(args.ingestedBefore),
      }),
  },

  Mutation: {
    registerRecipe: (_root, args: Args, ctx) =>
      mutation(ctx, 'registerRecipe', 'admin', args, async (audit) => {
        const yaml = str(args.yaml);
        const json = args.json;
        if ((yaml === undefined) === (json === undefined || json === null)) {
          throw new InvalidArgumentError('give the recipe as either yaml or json (exactly one of them)');
        }
        const plan = yaml !== undefined ? parseRecipeYaml(yaml) : compileRecipe(json);
        return ctx.controlPlane.audited(audit).registerRecipe(plan, yaml);
      }),
    startRecipe: (_root, args: Args, ctx) =>
      mutation(ctx, 'startRecipe', 'operator', args, async (audit) => {
        const version = int(args.version);
        const key = str(args.idempotencyKey);
        const deadline = args.deadline == null ? undefined : parseDuration(args.deadline);
        if (args.deadline != null && (deadline === undefined || deadline <= 0))
          throw new InvalidArgumentError(
            `deadline: ${JSON.stringify(args.deadline)} is not a positive duration (e.g. 30s, 2h)`,
          );
        // The request's context, explicitly: it reaches the execution even in a process
        // without an SDK (whose no-op context manager keeps no active context).
        const traceparent = traceparentOf(ctx.trace);
        const started = await ctx.controlPlane.audited(audit).startExecution({
          recipe: str(args.recipe) ?? '',
          input: args.input ?? {},
          ...(traceparent === undefined ? {} : { traceparent }),
          ...(version === undefined ? {} : { version }),
          ...(key === undefined ? {} : { idempotencyKey: key }),
          ...(deadline === undefined ? {} : { deadline }),
        });
        return { created: started.created, execution: await loadExecution(ctx, started.executionId) };
      }),
    cancelExecution: (_root, args: Args, ctx) =>
      mutation(ctx, 'cancelExecution', 'operator', args, async (audit) => {
        const id = executionId(args.id, 'id');
        await ctx.controlPlane.audited(audit).cancelExecution(id, str(args.reason));
        return loadExecution(ctx, id);
      }),
    pauseExecution: (_root, args: Args, ctx) =>
      mutation(ctx, 'pauseExecution', 'operator', args, async (audit) => {
        const id = executionId(args.id, 'id');
        await ctx.controlPlane.audited(audit).pauseExecution(id);
        return loadExecution(ctx, id);
      }),
    resumeExecution: (_root, args: Args, ctx) =>
      mutation(ctx, 'resumeExecution', 'operator', args, async (audit) => {
        const id = executionId(args.id, 'id');
        await ctx.controlPlane.audited(audit).resumeExecution(id);
        return loadExecution(ctx, id);
      }),
    retryStep: (_root, args: Args, ctx) =>
      mutation(ctx, 'retryStep', 'operator', args, async (audit) => {
        const id = executionId(args.executionId, 'executionId');
        await ctx.controlPlane.audited(audit).retryStep(id, str(args.stepKey) ?? '');
        return loadExecution(ctx, id);
      }),
    skipStep: (_root, args: Args, ctx) =>
      mutation(ctx, 'skipStep', 'operator', args, async (audit) => {
        const id = executionId(args.executionId, 'executionId');
        await ctx.controlPlane.audited(audit).skipStep(id, str(args.stepKey) ?? '', args.output ?? null);
        return loadExecution(ctx, id);
      }),
    rerunFromStep: (_root, args: Args, ctx) =>
      mutation(ctx, 'rerunFromStep', 'operator', args, async (audit) => {
        const id = executionId(args.executionId, 'executionId');
        await ctx.controlPlane.audited(audit).rerunFromStep(id, str(args.stepId) ?? '');
        return loadExecution(ctx, id);
      }),
    signal: (_root, args: Args, ctx) =>
      mutation(ctx, 'signal', 'operator', args, async (audit) => {
        const id = executionId(args.executionId, 'executionId');
        await ctx.controlPlane.audited(audit).signalExecution(id, str(args.name) ?? '', args.payload ?? null);
        return loadExecution(ctx, id);
      }),
    reprocessDeadLetters: (_root, args: Args, ctx) =>
      mutation(ctx, 'reprocessDeadLetters', 'operator', args, (audit) =>
        ctx.controlPlane
          .audited(audit)
          .reprocessDeadLetters(
            deadLetterSelection(args),
            ctx.caller.name,
            args.payload === null ? undefined : args.payload,
          ),
      ),
    discardDeadLetters: (_root, args: Args, ctx) =>
      mutation(ctx, 'discardDeadLetters', 'operator', args, (audit) =>
        ctx.controlPlane.audited(audit).discardDeadLetters(deadLetterSelection(args), ctx.caller.name),
      ),
    createApiToken: (_root, args: Args, ctx) =>
      // The secret is never audited: only the name and role.
      mutation(ctx, 'createApiToken', 'admin', args, async (audit) => {
        const name = str(args.name) ?? '';
        if (!/^[A-Za-z0-9._-]{1,100}$/.test(name)) {
          throw new InvalidArgumentError('name: 1 to 100 letters, digits, ".", "_" or "-"');
        }
        const created = await createApiToken(
          ctx.db,
          name,
          (str(args.role) ?? '').toLowerCase() as Role,
          ctx.caller.name,
          audit,
        );
        return { ...created, role: created.role.toUpperCase() };
      }),
    revokeApiToken: (_root, args: Args, ctx) =>
      mutation(ctx, 'revokeApiToken', 'admin', args, (audit) => revokeApiToken(ctx.db, str(args.name) ?? '', audit)),
  },

  Subscription: {
    executionUpdated: {
      subscribe: withFilter(
        (_root: unknown, args: Args, ctx: MercuriusContext) => {
          executionId(args.id, 'id');
          return ctx.pubsub.subscribe(`execution:${String(args.id)}`);
        },
        () => true,
      ),
      // Read at delivery: subscribers see committed state, not the notification's guess.
      resolve: (payload: { change: ExecutionChange }, _args: Args, ctx: MercuriusContext) =>
        loadExecution(ctx, payload.change.id),
    },
    executionsChanged: {
      subscribe: withFilter(
        (_root: unknown, _args: Args, ctx: MercuriusContext) => ctx.pubsub.subscribe('executions'),
        (payload: { change: ExecutionChange }, args: Args) => {
          const filter = (args.filter ?? {}) as { status?: string[] | null; recipe?: string | null };
          if (filter.recipe != null && filter.recipe !== payload.change.recipe) return false;
          if (filter.status != null && !filter.status.includes(payload.change.status.toUpperCase())) return false;
          return true;
        },
      ),
      resolve: (payload: { change: ExecutionChange }) => ({
        ...payload.change,
        status: payload.change.status.toUpperCase(),
      }),
    },
  },

  ExecutionChange: {
    execution: async (change: ExecutionChange, _args: Args, ctx: MercuriusContext) =>
      (await executionsById(ctx.db, [change.id])).get(change.id) ?? null,
  },
};

type Query<P> = { obj: P; params: Args };

/** Batched field loaders: one query per field per request, however many parents. */
export const loaders: MercuriusLoaders = {
  Execution: {
    steps: async (queries: Query<ExecutionNode>[], ctx: MercuriusContext) => {
      const rows = await stepsOf(
        ctx.db,
        queries.map((q) => q.obj.id),
      );
      return queries.map((q) => rows.filter((r) => r.executionId === q.obj.id));
    },
    events: async (queries: Query<ExecutionNode>[], ctx: MercuriusContext) => {
      const after = Math.min(...queries.map((q) => int(q.params.afterSeq) ?? 0));
      const rows = await eventsOf(
        ctx.db,
        queries.map((q) => q.obj.id),
        after,
      );
      return queries.map((q) => {
        const afterSeq = int(q.params.afterSeq) ?? 0;
        const first = Math.min(int(q.params.first) ?? 1000, 10_000);
        return rows.filter((r) => r.executionId === q.obj.id && r.seq > afterSeq).slice(0, first);
      });
    },
    handlerFailures: async (queries: Query<ExecutionNode>[], ctx: MercuriusContext) => {
      const byId = await handlerFailuresOf(
        ctx.db,
        queries.map((q) => q.obj.id),
      );
      return queries.map((q) => byId.get(q.obj.id) ?? []);
    },
    buckets: async (queries: Query<ExecutionNode>[], ctx: MercuriusContext) => {
      const byId = await bucketsOf(
        ctx.db,
        ctx.controlPlane.environment.plans,
        queries.map((q) => q.obj.id),
      );
      return queries.map((q) => byId.get(q.obj.id) ?? []);
    },
  },
  Step: {
    attempts: async (queries: Query<StepNode>[], ctx: MercuriusContext) => {
      const rows = await attemptsOf(ctx.db, [...new Set(queries.map((q) => q.obj.executionId))]);
      return queries.map((q) => rows.filter((r) => r.executionId === q.obj.executionId && r.stepKey === q.obj.key));
    },
  },
  Recipe: {
    versions: async (queries: Query<{ name: string }>[], ctx: MercuriusContext) => {
      const rows: RecipeVersionNode[] = await recipeVersions(
        ctx.db,
        queries.map((q) => q.obj.name),
      );
      return queries.map((q) => rows.filter((r) => r.name === q.obj.name));
    },
  },
};
