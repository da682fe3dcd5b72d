import pg from 'pg';
import { z } from 'zod';
import { pgConnectionConfig, type PostgresConnection } from '../security/postgres-connection.js';
import type { Logger } from '../logger.js';

/** One execution's change, as sous.notify_execution_changes() announces it when it commits. */
export const executionChangeSchema = z.object({
  id: z.string(),
  status: z.string(),
  recipe: z.string(),
  version: z.number().int(),
  seq: z.number().int(),
});
export type ExecutionChange = z.infer<typeof executionChangeSchema>;

/**
 * A notification's payload: the changes one statement made (0012: an array, split under
 * the 8000-byte limit), or a single change (the row trigger before 0012).
 */
export const executionChangesSchema = z.union([
  z.array(executionChangeSchema),
  executionChangeSchema.transform((change) => [change]),
]);

export const EXECUTION_CHANNEL = 'sous_execution';

export interface ChangeListener {
  close(): Promise<void>;
}

/**
 * LISTENs for committed execution changes (PostgreSQL delivers NOTIFY on commit only,
 * to every listening connection, so every API process sees every change). Reconnects
 * after losing the connection; changes committed meanwhile are not replayed, so a
 * subscriber that must not miss one re-reads the execution after reconnecting.
 */
export async function listenForExecutionChanges(
  connection: PostgresConnection,
  onChange: (change: ExecutionChange) => void,
  logger: Logger,
): Promise<ChangeListener> {
  const log = logger.child({ component: 'execution-changes' });
  let client: pg.Client | undefined;
  let closed = false;

  const connect = async (): Promise<void> => {
    const next = new pg.Client({ ...pgConnectionConfig(connection), application_name: 'sous-api-listen' });
    next.on('notification', (message) => {
      if (message.channel !== EXECUTION_CHANNEL || message.payload === undefined) return;
      let payload: unknown;
      try {
        payload = JSON.parse(message.payload);
      } catch {
        payload = undefined;
      }
      const parsed = executionChangesSchema.safeParse(payload);
      if (parsed.success) for (const change of parsed.data) onChange(change);
      else log.warn({ payload: message.payload }, 'unreadable execution change notification');
    });
    next.on('error', (error) => {
      log.warn({ reason: error.message }, 'notification connection lost; reconnecting');
      void next.end().catch(() => undefined);
      if (!closed)
        setTimeout(
          () => void connect().catch((e: unknown) => log.error({ reason: String(e) }, 'reconnect failed')),
          1000,
        );
    });
    await next.connect();
    await next.query(`LISTEN ${EXECUTION_CHANNEL}`);
    client = next;
  };

  await connect();
  return {
    async close() {
      closed = true;
      await client?.end();
    },
  };
}
