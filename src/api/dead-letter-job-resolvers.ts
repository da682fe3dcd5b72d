// GraphQL fields of DLT reprocessing jobs: start one (OPERATOR, audited like every
// mutation) and read its progress (any role).
import type { IResolverObject, IResolvers, MercuriusContext } from 'mercurius';
import { startDeadLetterJob } from '../control-plane/dead-letter-job.js';
import {
  selectDeadLetterJob,
  selectDeadLetterJobFailures,
  selectDeadLetterJobs,
  type DeadLetterJobRow,
} from '../store/dead-letter-jobs.js';
import { isUuid } from '../uuid.js';
import { InvalidArgumentError } from './errors.js';
import { mutation } from './audit.js';
import { deadLetterSelection } from './resolvers.js';

type Args = Record<string, unknown>;

/** A job as the DeadLetterJob type shows it. */
function jobNode(row: DeadLetterJobRow) {
  return {
    id: row.id,
    state: row.state.toUpperCase(),
    selection: row.selection,
    total: row.total,
    done: row.done,
    failed: row.failed,
    batchSize: row.batch_size,
    createdBy: row.created_by,
    createdAt: row.created_at,
    startedAt: row.started_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
    lastError: row.last_error,
  };
}

type JobNode = ReturnType<typeof jobNode>;

const count = (value: unknown, fallback: number, max: number, argument: string): number => {
  const n = typeof value === 'number' ? value : fallback;
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new InvalidArgumentError(`${argument}: must be between 1 and ${max}, got ${n}`);
  }
  return n;
};

export const deadLetterJobResolvers = {
  Query: {
    deadLetterJob: async (_root: unknown, args: Args, ctx: MercuriusContext) => {
      const id = typeof args.id === 'string' ? args.id : '';
      if (!isUuid(id)) return null;
      const row = await selectDeadLetterJob(ctx.db, id.toLowerCase());
      return row === undefined ? null : jobNode(row);
    },
    deadLetterJobs: async (_root: unknown, args: Args, ctx: MercuriusContext) =>
      (await selectDeadLetterJobs(ctx.db, count(args.first, 20, 1000, 'first'))).map(jobNode),
  },
  Mutation: {
    startDeadLetterJob: (_root: unknown, args: Args, ctx: MercuriusContext) =>
      mutation(ctx, 'startDeadLetterJob', 'operator', args, async (audit) =>
        jobNode(
          await startDeadLetterJob(ctx.db, {
            selection: deadLetterSelection(args),
            actor: ctx.caller.name,
            batchSize: count(args.batchSize, 100, 10_000, 'batchSize'),
            audit,
          }),
        ),
      ),
  },
  DeadLetterJob: {
    failures: async (job: JobNode, args: Args, ctx: MercuriusContext) =>
      (await selectDeadLetterJobFailures(ctx.db, job.id, count(args.first, 100, 10_000, 'first'))).map((f) => ({
        deadLetterId: f.dead_letter_id,
        errorCode: f.error_code,
        errorMessage: f.error_message,
        at: f.finished_at,
      })),
  },
} satisfies IResolvers;

/** `base` with the job fields added to Query and Mutation, and the DeadLetterJob type. */
export function withDeadLetterJobResolvers(base: IResolvers): IResolvers {
  return {
    ...base,
    Query: { ...(base.Query as IResolverObject | undefined), ...deadLetterJobResolvers.Query },
    Mutation: { ...(base.Mutation as IResolverObject | undefined), ...deadLetterJobResolvers.Mutation },
    DeadLetterJob: deadLetterJobResolvers.DeadLetterJob,
  };
}
