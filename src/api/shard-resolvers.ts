// GraphQL fields of the shard registry: the live shards (any role), drain and resume
// (OPERATOR, audited like every mutation), changes as a subscription, and why a step
// waits for a shard.
import type { IResolverObject, IResolvers, MercuriusContext, MercuriusLoaders } from 'mercurius';
import type { ShardHealth } from '../protocol/shards.js';
import type { LiveShard } from '../shards/registry-view.js';
import { selectDrainRequests } from '../store/shards.js';
import { selectWaitsOfExecutions } from '../store/waiting-commands.js';
import { InvalidArgumentError } from './errors.js';
import type { AttemptNode, StepNode } from './read-model.js';
import { mutation } from './audit.js';

type Args = Record<string, unknown>;
type Query<P> = { obj: P; params: Args };

const HEALTH = { HEALTHY: 'healthy', DEGRADED: 'degraded', DRAINING: 'draining' } as const;

export interface ShardNode {
  readonly id: string;
  readonly service: string;
  readonly instance: string;
  readonly region: string | null;
  readonly health: string;
  readonly reason: string | null;
  readonly capabilities: readonly { name: string; version: number }[];
  readonly inFlight: number;
  readonly concurrency: number;
  readonly lastHeartbeatAt: Date;
  readonly firstSeenAt: Date;
  readonly drainRequestedAt: Date | null;
  readonly drainRequestedBy: string | null;
}

export function shardNode(s: LiveShard, drain?: { at: Date; by: string | null }): ShardNode {
  return {
    id: s.shardId,
    service: s.service,
    instance: s.instance,
    region: s.region,
    health: s.health.toUpperCase(),
    reason: s.reason ?? null,
    capabilities: s.capabilities,
    inFlight: s.load.inFlight,
    concurrency: s.load.concurrency,
    lastHeartbeatAt: new Date(s.lastHeartbeatMs),
    firstSeenAt: new Date(s.firstSeenMs),
    drainRequestedAt: drain?.at ?? null,
    drainRequestedBy: drain?.by ?? null,
  };
}

function filterOf(args: Args): (s: LiveShard) => boolean {
  const f = (typeof args.filter === 'object' && args.filter !== null ? args.filter : {}) as Record<string, unknown>;
  const health = typeof f.health === 'string' ? HEALTH[f.health as keyof typeof HEALTH] : undefined;
  return (s) =>
    (typeof f.capability !== 'string' || s.capabilities.some((c) => c.name === f.capability)) &&
    (typeof f.region !== 'string' || s.region === f.region) &&
    (health === undefined || s.health === (health satisfies ShardHealth)) &&
    (typeof f.service !== 'string' || s.service === f.service);
}

function shardId(args: Args): string {
  const id = typeof args.id === 'string' ? args.id : '';
  if (id.length === 0 || id.length > 200)
    throw new InvalidArgumentError('id: must be a shard id (1 to 200 characters)');
  return id;
}

/** The shard after a drain or resume request: as the registry has it now, with the request on it. */
async function afterRequest(ctx: MercuriusContext, id: string): Promise<ShardNode> {
  const live = ctx.controlPlane.shards().find((s) => s.shardId === id);
  if (live === undefined) throw new InvalidArgumentError(`id: no live shard ${JSON.stringify(id)}`);
  return shardNode(live, (await selectDrainRequests(ctx.db)).get(id));
}

const resolversOf = {
  Query: {
    shards: async (_root: unknown, args: Args, ctx: MercuriusContext) => {
      const drains = await selectDrainRequests(ctx.db);
      return ctx.controlPlane
        .shards()
        .filter(filterOf(args))
        .sort((a, b) => a.service.localeCompare(b.service) || a.shardId.localeCompare(b.shardId))
        .map((s) => shardNode(s, drains.get(s.shardId)));
    },
  },
  Mutation: {
    drainShard: (_root: unknown, args: Args, ctx: MercuriusContext) =>
      mutation(ctx, 'drainShard', 'operator', args, async (audit) => {
        const id = shardId(args);
        await ctx.controlPlane.audited(audit).drainShard(id, ctx.caller.name);
        return afterRequest(ctx, id);
      }),
    resumeShard: (_root: unknown, args: Args, ctx: MercuriusContext) =>
      mutation(ctx, 'resumeShard', 'operator', args, async (audit) => {
        const id = shardId(args);
        await ctx.controlPlane.audited(audit).resumeShard(id, ctx.caller.name);
        return afterRequest(ctx, id);
      }),
  },
  Subscription: {
    shardsChanged: {
      subscribe: (_root: unknown, _args: Args, ctx: MercuriusContext) => ctx.pubsub.subscribe('shards'),
      resolve: (payload: { change: { shardId: string; kind: string } }, _args: Args, ctx: MercuriusContext) => {
        const live = ctx.controlPlane.shards().find((s) => s.shardId === payload.change.shardId);
        return {
          shardId: payload.change.shardId,
          kind: payload.change.kind.toUpperCase(),
          shard: live === undefined ? null : shardNode(live),
        };
      },
    },
  },
  StepAttempt: {
    shard: (attempt: AttemptNode, _args: Args, ctx: MercuriusContext) => {
      const live =
        attempt.workerId === null ? undefined : ctx.controlPlane.shards().find((s) => s.shardId === attempt.workerId);
      return live === undefined ? null : shardNode(live);
    },
  },
};

const loadersOf = {
  Step: {
    // One query per request for every step asked.
    waitingForShard: async (queries: Query<StepNode>[], ctx: MercuriusContext) => {
      const rows = await selectWaitsOfExecutions(ctx.db, [...new Set(queries.map((q) => q.obj.executionId))]);
      return queries.map((q) => {
        const row = rows.find((r) => r.execution_id === q.obj.executionId && r.step_key === q.obj.key);
        return row === undefined ? null : { code: row.reason_code, reason: row.reason, since: row.since };
      });
    },
  },
};

export function withShardResolvers(base: IResolvers): IResolvers {
  return {
    ...base,
    Query: { ...(base.Query as IResolverObject | undefined), ...resolversOf.Query },
    Mutation: { ...(base.Mutation as IResolverObject | undefined), ...resolversOf.Mutation },
    Subscription: { ...(base.Subscription as IResolverObject | undefined), ...resolversOf.Subscription },
    StepAttempt: { ...(base.StepAttempt as IResolverObject | undefined), ...resolversOf.StepAttempt },
  };
}

export function withShardLoaders(base: MercuriusLoaders): MercuriusLoaders {
  return { ...base, Step: { ...base.Step, ...loadersOf.Step } };
}
