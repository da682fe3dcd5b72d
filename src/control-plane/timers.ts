import type { Kysely } from 'kysely';
import type { Task } from 'graphile-worker';
import { z } from 'zod';
import type { Database } from '../db/schema.js';
import { ExecutionNotFoundError } from './errors.js';
import { runDecision, type DecisionEnvironment } from './run-decision.js';

const timerPayloadSchema = z.strictObject({ executionId: z.uuid(), timerId: z.uuid() });

/**
 * The graphile-worker task behind every engine timer (retry back-off, sleep, signal and
 * step timeouts). The job was added in the transaction that scheduled the timer; running
 * it twice is harmless, because a timer already handled is gone from the state.
 */
export function timerTask(db: Kysely<Database>, env: DecisionEnvironment): Task {
  return async (payload, helpers) => {
    const parsed = timerPayloadSchema.safeParse(payload);
    if (!parsed.success) {
      // Not ours to retry: a malformed job is logged and dropped by graphile after this throw.
      throw new Error(`invalid ${env.timerTask} payload: ${parsed.error.message}`);
    }
    const { executionId, timerId } = parsed.data;
    try {
      await db.transaction().execute((trx) => runDecision(trx, env, executionId, { kind: 'timer', timerId }));
    } catch (error) {
      if (error instanceof ExecutionNotFoundError) {
        helpers.logger.warn(`timer ${timerId} names unknown execution ${executionId}; ignored`);
        return;
      }
      throw error;
    }
  };
}
