import pg from 'pg';
import { PayloadUnavailableError } from './errors.js';

/** Where a worker fetches inputs that travel by reference (claim check). */
export interface PayloadStore {
  fetch(ref: string): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * Reads claim-checked payloads from the control plane's `sous.payload` table. Give the
 * worker a role that can only SELECT that table.
 */
export function postgresPayloadStore(connectionString: string): PayloadStore {
  const pool = new pg.Pool({ connectionString, max: 2, application_name: 'sous-worker-payloads' });
  pool.on('error', () => undefined); // A dropped idle connection is replaced on next use.
  return {
    async fetch(ref) {
      const { rows } = await pool.query<{ data: unknown }>('SELECT data FROM sous.payload WHERE id = $1', [ref]);
      const row = rows[0];
      if (row === undefined) throw new PayloadUnavailableError(`payload ${ref} does not exist`);
      return row.data;
    },
    close: () => pool.end(),
  };
}
