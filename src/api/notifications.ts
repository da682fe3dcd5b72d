import pg from 'pg';
import { z } from 'zod';
import type { Logger } from '../logger.js';

/** What sous.notify_execution_change() announces when a change to an execution commits. */
export const executionChangeSchema = z.object({
  id: z.string(),
  status: z.string(),
  recipe: z.string(),
  version: z.number().int(),
  seq: z.number().int(),
});
export type ExecutionChange = z.infer<typeof executionChangeSchema>;

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
  connectionString: string,
  onChange: (change: ExecutionChange) => void,
  logger: Logger,
): Promise<ChangeListener> {
  const log = logger.child({ component: 'execution-changes' });
  let client: pg.Client | undefined;
  let closed = false;

  const connect = async (): Promise<void> => {
    const next = new pg.Client({ connectionString, application_name: 'sous-api-listen' });
    next.on('notification', (message) => {
      if (message.channel !== EXECUTION_CHANNEL || message.payload === undefined) return;
      const parsed = executionChangeSchema.safeParse(JSON.parse(message.payload));
      if (parsed.success) onChange(parsed.data);
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
