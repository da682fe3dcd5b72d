// The auditLog query: ADMIN only (the log holds every caller's arguments), and a refusal
// is itself audited; reads that are allowed are not audited, as no read is.
import type { IResolverObject, IResolvers, MercuriusContext } from 'mercurius';
import { selectAuditPage } from '../store/audit.js';
import { requireAuditedRole } from './audit.js';
import { connection, decodeCursor, encodeCursor, isoTime, pageSize } from './paging.js';

type Args = Record<string, unknown>;

/** A row of the audit log as the AuditEntry type shows it. */
interface AuditEntryNode {
  readonly id: string;
  readonly at: Date;
  readonly tokenId: string | null;
  readonly actor: string;
  readonly role: string | null;
  readonly operation: string;
  readonly arguments: unknown;
  readonly outcome: string;
  readonly errorCode: string | null;
}

interface AuditLogFilter {
  readonly actor?: string | null;
  readonly operation?: string | null;
  readonly outcome?: string | null;
  readonly after?: string | null;
  readonly before?: string | null;
}

// Ids are bigserial: up to 19 digits.
const readAuditCursor = (value: Record<string, unknown>): string | undefined =>
  typeof value.id === 'string' && /^[0-9]{1,19}$/.test(value.id) ? value.id : undefined;

const resolversOf = {
  Query: {
    auditLog: async (_root: unknown, args: Args, ctx: MercuriusContext) => {
      await requireAuditedRole(ctx, 'auditLog', 'admin', args);
      const first = pageSize(typeof args.first === 'number' ? args.first : 50);
      const after = typeof args.after === 'string' ? decodeCursor(args.after, readAuditCursor) : null;
      const filter = (args.filter ?? {}) as AuditLogFilter;
      const rows = await selectAuditPage<AuditEntryNode>(ctx.db, {
        actor: filter.actor ?? null,
        operation: filter.operation ?? null,
        outcome: filter.outcome?.toLowerCase() ?? null,
        after: isoTime('filter.after', filter.after),
        before: isoTime('filter.before', filter.before),
        beforeId: after,
        limit: first + 1,
      });
      return connection(rows, first, (row) => encodeCursor({ id: row.id }));
    },
  },
} satisfies IResolvers;

export function withAuditLogResolvers(base: IResolvers): IResolvers {
  return { ...base, Query: { ...(base.Query as IResolverObject | undefined), ...resolversOf.Query } };
}
