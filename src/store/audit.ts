import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';

/** One row of sous.audit_log. */
export interface AuditEntry {
  readonly tokenId: string;
  readonly actor: string;
  readonly role: string;
  readonly operation: string;
  readonly arguments: unknown;
  readonly outcome: 'ok' | 'error' | 'denied';
  readonly errorCode: string | null;
}

export async function insertAuditEntry(db: Kysely<Database>, entry: AuditEntry): Promise<void> {
  await sql`
    INSERT INTO sous.audit_log (token_id, actor, role, operation, arguments, outcome, error_code)
    VALUES (${entry.tokenId}, ${entry.actor}, ${entry.role}, ${entry.operation},
      ${JSON.stringify(entry.arguments ?? {})}::jsonb, ${entry.outcome}, ${entry.errorCode})`.execute(db);
}

/**
 * Writes the audit row of an action inside the action's own transaction, so the row and
 * the change it records commit together or not at all (a crash between two transactions
 * would otherwise keep the change and lose who made it). Whoever opens the action's
 * transaction calls it last, after the change; `auditedTransaction` does that.
 */
export type AuditHook = (trx: Transaction<Database>) => Promise<void>;

const isTransaction = (db: Kysely<Database>): db is Transaction<Database> => db.isTransaction;

/**
 * Runs `work` in a transaction (in `db` itself when it is one already: a caller that
 * writes its own rows with the work) and then `audit`, if any, in the same transaction.
 */
export function auditedTransaction<T>(
  db: Kysely<Database>,
  audit: AuditHook | undefined,
  work: (trx: Transaction<Database>) => Promise<T>,
): Promise<T> {
  const audited = async (trx: Transaction<Database>): Promise<T> => {
    const result = await work(trx);
    await audit?.(trx);
    return result;
  };
  return isTransaction(db) ? audited(db) : db.transaction().execute(audited);
}

/** What a page of the audit log is filtered by (null: any). */
export interface AuditPageQuery {
  readonly actor: string | null;
  readonly operation: string | null;
  readonly outcome: string | null;
  /** At or after. */
  readonly after: string | null;
  /** Strictly before. */
  readonly before: string | null;
  /** Keyset: rows with a smaller id, newest first. */
  readonly beforeId: string | null;
  readonly limit: number;
}

/**
 * A page of the audit log, newest first. Ordered by id, not `at`: `at` is the time its
 * transaction began (now()), so rows of a long transaction are not in `at` order, while
 * ids are unique and only grow. Shaped as the API shows it.
 */
export async function selectAuditPage<Row>(db: Kysely<Database>, p: AuditPageQuery): Promise<Row[]> {
  const { rows } = await sql<Row>`
    SELECT id::text AS id, at, token_id AS "tokenId", actor, upper(role) AS role, operation, arguments,
      upper(outcome) AS outcome, error_code AS "errorCode"
    FROM sous.audit_log
    WHERE (${p.actor}::text IS NULL OR actor = ${p.actor})
      AND (${p.operation}::text IS NULL OR operation = ${p.operation})
      AND (${p.outcome}::text IS NULL OR outcome = ${p.outcome})
      AND (${p.after}::timestamptz IS NULL OR at >= ${p.after}::timestamptz)
      AND (${p.before}::timestamptz IS NULL OR at < ${p.before}::timestamptz)
      AND (${p.beforeId}::bigint IS NULL OR id < ${p.beforeId}::bigint)
    ORDER BY id DESC
    LIMIT ${p.limit}`.execute(db);
  return rows;
}
