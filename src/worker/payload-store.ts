import pg from 'pg';
import { pgConnectionConfig } from '../security/postgres-connection.js';
import type { PostgresTlsOptions } from '../security/config.js';
import { z } from 'zod';
import { newId } from '../uuid.js';
import { PayloadUnavailableError, WorkerConfigError } from './errors.js';

/**
 * Where a worker reads the inputs that come by reference (claim check) and stores the
 * outputs too large to travel inline (docs/payloads.md). Implement it over any storage the
 * control plane can read back: the control plane resolves an `outputRef` from
 * `sous_payload.payload`, so a store of another kind must also put the data there.
 */
export interface PayloadStore {
  /** The payload stored under `ref`; throws PayloadUnavailableError when there is none. */
  fetch(ref: string): Promise<unknown>;
  /**
   * Stores one payload of `executionId` (`json`: its JSON text, `bytes` long) under a new
   * reference, resolving to that reference once the payload is durable: the reply that
   * names it is sent only then. Without it, outputs always travel inline.
   */
  store?(payload: { readonly executionId: string; readonly json: string; readonly bytes: number }): Promise<string>;
  /** Outputs whose JSON is longer than this many bytes go through `store`. @default 65536 */
  readonly maxInlineBytes?: number;
  close(): Promise<void>;
}

/** The inline limit of outputs when a store names none: the control plane's for inputs. */
export const DEFAULT_MAX_INLINE_OUTPUT_BYTES = 64 * 1024;

export interface PostgresPayloadStoreOptions {
  /** Outputs whose JSON is longer than this go by reference. @default 65536 */
  readonly maxInlineBytes?: number;
  /** Connections of the store's pool. @default 2 */
  readonly poolSize?: number;
  /** TLS to PostgreSQL (a connection string's own sslmode takes precedence). @default the connection string decides */
  readonly tls?: PostgresTlsOptions;
  /** Password, when not in the connection string. @default none */
  readonly password?: string;
}

const optionsSchema = z.strictObject({
  maxInlineBytes: z
    .number()
    .int()
    .min(1024, 'maxInlineBytes must be at least 1024')
    .default(DEFAULT_MAX_INLINE_OUTPUT_BYTES),
  poolSize: z.number().int().min(1, 'poolSize must be at least 1').default(2),
  tls: z
    .custom<PostgresTlsOptions>(
      (v) =>
        typeof v === 'object' &&
        v !== null &&
        ['disable', 'require', 'verify-ca', 'verify-full'].includes(String((v as { mode?: unknown }).mode)),
      'tls.mode must be disable, require, verify-ca or verify-full',
    )
    .optional(),
  password: z.string().min(1, 'password must not be empty').optional(),
});

/**
 * Reads and adds claim-check payloads in `sous_payload.payload`, in the control plane's
 * database but outside its `sous` schema. Connect as a role that is a member of
 * `sous_payload_worker` (migration 0016: SELECT and INSERT on that table, nothing else):
 *
 *   CREATE ROLE charge_worker LOGIN PASSWORD '...' IN ROLE sous_payload_worker;
 */
export function postgresPayloadStore(
  connectionString: string,
  options: PostgresPayloadStoreOptions = {},
): PayloadStore {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`);
    throw new WorkerConfigError(`invalid payload store options: ${problems.join('; ')}`, { cause: parsed.error });
  }
  const { tls, password } = parsed.data;
  const pool = new pg.Pool({
    ...pgConnectionConfig({
      connectionString,
      ...(tls === undefined ? {} : { tls }),
      ...(password === undefined ? {} : { password }),
    }),
    max: parsed.data.poolSize,
    application_name: 'sous-worker-payloads',
  });
  pool.on('error', () => undefined); // A dropped idle connection is replaced on next use.
  return {
    maxInlineBytes: parsed.data.maxInlineBytes,
    async fetch(ref) {
      const { rows } = await pool.query<{ data: unknown }>('SELECT data FROM sous_payload.payload WHERE id = $1', [
        ref,
      ]);
      const row = rows[0];
      if (row === undefined) throw new PayloadUnavailableError(`payload ${ref} does not exist`);
      return row.data;
    },
    async store({ executionId, json, bytes }) {
      // A new id per call: a retried reply carries the id it was built with, and a payload
      // whose reply never went out is purged with its execution.
      const id = newId();
      await pool.query(
        'INSERT INTO sous_payload.payload (id, execution_id, data, bytes) VALUES ($1, $2, $3::jsonb, $4)',
        [id, executionId, json, bytes],
      );
      return id;
    },
    close: () => pool.end(),
  };
}
