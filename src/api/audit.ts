import { context as otelContext } from '@opentelemetry/api';
import { insertAuditEntry, type AuditHook } from '../store/audit.js';
import { requireRole, type Role } from './auth.js';
import { extensionsOf } from './errors.js';
import type { ApiContext } from './resolvers.js';

export type AuditOutcome = 'ok' | 'error' | 'denied';

type Args = Record<string, unknown>;

function auditEntry(ctx: ApiContext, operation: string, args: Args, outcome: AuditOutcome, errorCode: string | null) {
  return {
    tokenId: ctx.caller.tokenId,
    actor: ctx.caller.name,
    role: ctx.caller.role,
    operation,
    arguments: args,
    outcome,
    errorCode,
  };
}

/**
 * Throws ForbiddenError unless the caller has `role`, after writing the refusal to the
 * audit log as `denied` (in a transaction of its own: nothing else ran). For mutations,
 * and for the reads only some roles may make (the audit log itself).
 */
export async function requireAuditedRole(ctx: ApiContext, operation: string, role: Role, args: Args): Promise<void> {
  try {
    requireRole(ctx.caller, role, operation);
  } catch (error) {
    await insertAuditEntry(ctx.db, auditEntry(ctx, operation, args, 'denied', extensionsOf(error).code));
    throw error;
  }
}

/**
 * Runs a mutation for a role, with one row of sous.audit_log saying who did what, with
 * which arguments, and how it ended. Refused below the role: a `denied` row. Allowed:
 * `run` gets the `ok` row as a hook, which it hands to the action; the action writes it
 * in the transaction of its change, so a crash cannot keep the change and lose its row
 * (or keep a row for a change that rolled back). An action that ends without having
 * written it (one that changed nothing, e.g. reprocessing an empty selection) gets it
 * written on its own. A failed action rolled back its row with its change, and gets an
 * `error` row in a transaction of its own. No audited action changes only Kafka: a
 * shard's drain or resume is an outbox row, committed with its audit row like the rest.
 */
export async function mutation<T>(
  ctx: ApiContext,
  operation: string,
  role: Role,
  args: Args,
  run: (audit: AuditHook) => Promise<T>,
): Promise<T> {
  await requireAuditedRole(ctx, operation, role, args);
  // An object, not a boolean: the hook sets it from inside the action.
  const audited = { written: false };
  const audit: AuditHook = async (trx) => {
    await insertAuditEntry(trx, auditEntry(ctx, operation, args, 'ok', null));
    audited.written = true;
  };
  try {
    // In the request's span: an execution started here is in the caller's trace.
    const result = await otelContext.with(ctx.trace, () => run(audit));
    if (!audited.written) await insertAuditEntry(ctx.db, auditEntry(ctx, operation, args, 'ok', null));
    return result;
  } catch (error) {
    await insertAuditEntry(ctx.db, auditEntry(ctx, operation, args, 'error', extensionsOf(error).code));
    throw error;
  }
}
