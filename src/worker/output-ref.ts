import type { PayloadRef, StepCommand, StepError } from '../protocol/messages.js';
import { OutputNotStoredError } from './errors.js';
import { DEFAULT_MAX_INLINE_OUTPUT_BYTES, type PayloadStore } from './payload-store.js';

/*
 * Outputs by reference (claim check, the way back): an output whose JSON is over the
 * store's inline limit is stored through the worker's payload store and the reply carries
 * `outputRef`; the control plane reads it back in the transaction that applies the reply.
 * Large outputs no longer ride in the reply (up to Kafka's message limit, or not at all).
 */

/** How an output travels in `step.completed`, or why it cannot. */
export type CarriedOutput = { output: unknown } | { outputRef: PayloadRef } | { failure: StepError };

/**
 * The output inline when it is small, or when the worker has no store able to keep it
 * (then it travels inline as before); else stored, and its reference. A store that fails
 * fails the attempt with a retryable `output_not_stored`: the step's retry policy runs it
 * again rather than the command being redelivered behind the worker's back.
 */
export async function carriedOutput(
  store: PayloadStore | undefined,
  command: Pick<StepCommand, 'executionId' | 'stepExecutionId'>,
  output: unknown,
): Promise<CarriedOutput> {
  const value = output ?? null;
  if (store?.store === undefined) return { output: value };
  const json = JSON.stringify(value);
  const bytes = Buffer.byteLength(json);
  if (bytes <= (store.maxInlineBytes ?? DEFAULT_MAX_INLINE_OUTPUT_BYTES)) return { output: value };
  try {
    const ref = await store.store({ executionId: command.executionId, json, bytes });
    return { outputRef: { ref, bytes } };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const failure = new OutputNotStoredError(
      `output of ${command.stepExecutionId} (${bytes} bytes) could not be stored by reference: ${reason}`,
      { cause: error },
    );
    return { failure: { code: failure.code, message: failure.message, retryable: true } };
  }
}
