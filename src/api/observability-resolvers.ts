// GraphQL fields that make slow and stuck work visible: per-capability backlog (any
// role: it is a read, and reads are not audited) and each step's wait and run times.
import type { IResolverObject, IResolvers, MercuriusContext, MercuriusLoaders } from 'mercurius';
import { attemptTiming } from './attempt-timing.js';
import { attemptsOf, type AttemptNode, type StepNode } from './read-model.js';

type Args = Record<string, unknown>;
type Query<P> = { obj: P; params: Args };

const resolversOf = {
  Query: {
    capabilityBacklog: async (_root: unknown, args: Args, ctx: MercuriusContext) => {
      const rows = await ctx.controlPlane.observability.backlog();
      const only = typeof args.capability === 'string' ? args.capability : undefined;
      return only === undefined ? rows : rows.filter((r) => r.capability === only);
    },
  },
  StepAttempt: {
    waitSeconds: (attempt: AttemptNode) => attemptTiming(attempt, new Date()).waitSeconds,
    runSeconds: (attempt: AttemptNode) => attemptTiming(attempt, new Date()).runSeconds,
  },
};

const loadersOf = {
  Step: {
    // One query per request for every step asked, as Step.attempts does.
    timing: async (queries: Query<StepNode>[], ctx: MercuriusContext) => {
      const rows = await attemptsOf(ctx.db, [...new Set(queries.map((q) => q.obj.executionId))]);
      const now = new Date();
      return queries.map((q) => {
        const latest = rows
          .filter((r) => r.executionId === q.obj.executionId && r.stepKey === q.obj.key)
          .reduce<AttemptNode | undefined>(
            (last, r) => (last === undefined || r.attempt > last.attempt ? r : last),
            undefined,
          );
        return latest === undefined ? null : attemptTiming(latest, now);
      });
    },
  },
};

export function withObservabilityResolvers(base: IResolvers): IResolvers {
  return {
    ...base,
    Query: { ...(base.Query as IResolverObject | undefined), ...resolversOf.Query },
    StepAttempt: { ...(base.StepAttempt as IResolverObject | undefined), ...resolversOf.StepAttempt },
  };
}

export function withObservabilityLoaders(base: MercuriusLoaders): MercuriusLoaders {
  return { ...base, Step: { ...base.Step, ...loadersOf.Step } };
}
