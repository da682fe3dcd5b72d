// The bench's own PostgreSQL connection, as the cluster's superuser: it polls for finished
// executions and reads the counters (transaction ids, WAL, statement counts). Being another
// role than the control plane's, its queries are not counted as the control plane's round
// trips, and reading takes no transaction id.
import pg from 'pg';
import type { StackConfig } from '../src/stack/config.js';
import { setTimeout as sleep } from 'node:timers/promises';

/** The role the bench starts executions as: a member of sous's role, counted apart from it. */
export const STARTER_ROLE = 'sous_bench_starter';

export interface Marks {
  /** Next transaction id to be assigned: the delta counts write transactions, cluster-wide. */
  readonly xid: number;
  readonly walBytes: number;
  /** Statements sent (pg_stat_statements calls) by the control plane's role. */
  readonly controlPlaneCalls: number;
  /** ... and by the bench's starting role. */
  readonly starterCalls: number;
}

export interface RowCounts {
  readonly inserted: number;
  readonly updated: number;
  /** Updates that were HOT: no index touched. */
  readonly hotUpdated: number;
  /**
   * Index entries written: every inserted row and every non-HOT update adds one entry to
   * each index of its table (partial indexes counted as if they matched: an upper bound).
   * BRIN indexes are not counted: they keep one summary per range of pages, not an entry
   * per row, and an insert only widens a summary when its value falls outside it.
   */
  readonly indexInsertions: number;
}

export interface Probe {
  /** Whether pg_stat_statements is there to count statements. */
  readonly statementStats: boolean;
  marks(): Promise<Marks>;
  /** Rows written in all user tables (statistics arrive up to a second late). */
  rowCounts(): Promise<RowCounts>;
  resetStatements(): Promise<void>;
  /** Most-called statements of a role since the last reset, for the results file. */
  topStatements(role: string, limit: number): Promise<{ calls: number; query: string }[]>;
  waitFinished(ids: readonly string[]): Promise<void>;
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

export async function openProbe(config: StackConfig): Promise<Probe> {
  const pool = new pg.Pool({
    host: '127.0.0.1',
    port: config.pgPort,
    user: 'postgres',
    database: config.pgDatabase,
    max: 2,
    application_name: 'sous-bench-probe',
  });
  const query = async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) =>
    (await pool.query<R>(text, values)).rows;

  const role = await query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [STARTER_ROLE]);
  if (role.length === 0) {
    // Privileges through membership; it creates nothing (the bench migrates as sous first).
    await query(`CREATE ROLE ${STARTER_ROLE} LOGIN IN ROLE ${pg.escapeIdentifier(config.pgUser)}`);
  }
  const preloaded = await query<{ setting: string }>(
    `SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'`,
  );
  const statementStats = (preloaded[0]?.setting ?? '').split(',').some((l) => l.trim() === 'pg_stat_statements');
  if (statementStats) await query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');

  const callsOf = (r: string) =>
    statementStats
      ? `(SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
          WHERE r.rolname = ${pg.escapeLiteral(r)}
            AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()))::text`
      : `'NaN'`;
  return {
    statementStats,
    async marks() {
      const [row] = await query<{ xid: string; wal: string; cp: string; starter: string }>(
        `SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xid,
           pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS wal,
           ${callsOf(config.pgUser)} AS cp, ${callsOf(STARTER_ROLE)} AS starter`,
      );
      return {
        xid: Number(row?.xid),
        walBytes: Number(row?.wal),
        controlPlaneCalls: Number(row?.cp),
        starterCalls: Number(row?.starter),
      };
    },
    async rowCounts() {
      const [row] = await query<{ ins: string; upd: string; hot: string; idx: string }>(
        `SELECT coalesce(sum(t.n_tup_ins), 0)::text AS ins, coalesce(sum(t.n_tup_upd), 0)::text AS upd,
           coalesce(sum(t.n_tup_hot_upd), 0)::text AS hot,
           coalesce(sum((t.n_tup_ins + t.n_tup_upd - t.n_tup_hot_upd)
             * (SELECT count(*) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                  JOIN pg_am am ON am.oid = ic.relam
                WHERE i.indrelid = t.relid AND am.amname <> 'brin')), 0)::text AS idx
         FROM pg_stat_user_tables t`,
      );
      return {
        inserted: Number(row?.ins),
        updated: Number(row?.upd),
        hotUpdated: Number(row?.hot),
        indexInsertions: Number(row?.idx),
      };
    },
    async resetStatements() {
      if (statementStats) await query('SELECT pg_stat_statements_reset()');
    },
    async topStatements(r, limit) {
      if (!statementStats) return [];
      const rows = await query<{ calls: string; query: string }>(
        `SELECT s.calls::text AS calls, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 160) AS query
         FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
         WHERE r.rolname = $1 ORDER BY s.calls DESC LIMIT $2`,
        [r, limit],
      );
      return rows.map((x) => ({ calls: Number(x.calls), query: x.query }));
    },
    async waitFinished(ids) {
      for (;;) {
        const [row] = await query<{ n: number }>(
          `SELECT count(*)::int AS n FROM sous.execution
           WHERE id = ANY($1::uuid[]) AND status IN ('completed', 'failed', 'cancelled')`,
          [ids],
        );
        if ((row?.n ?? 0) >= ids.length) return;
        await sleep(25);
      }
    },
    query,
    close: () => pool.end(),
  };
}
