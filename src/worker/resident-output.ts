import type { PayloadRef, StepCommand, StepError } from '../protocol/messages.js';
import { isResidentClaimCheck, RESIDENCY_VIOLATION } from '../protocol/resident.js';
import { SousError } from '../errors.js';
import type { PayloadStore } from './payload-store.js';

/** A step got a resident output of another region, or cannot keep its own output resident. */
export class ResidencyViolationError extends SousError {
  readonly code = RESIDENCY_VIOLATION;
  readonly retryable = false;
}

/**
 * The input with every resident claim check of this worker's region replaced by the
 * stored value (read from this region's payload store). A claim check of another region
 * is refused: its data may not leave that region, so the step fails for good.
 */
export async function resolveResidentInput(
  input: unknown,
  region: string | null,
  store: PayloadStore | undefined,
  stepExecutionId: string,
): Promise<unknown> {
  if (isResidentClaimCheck(input)) {
    const { ref, region: home } = input.$resident;
    if (home !== region) {
      throw new ResidencyViolationError(
        `input of ${stepExecutionId} holds an output resident in region ${home}, and this shard is in ${region ?? 'no region'}: run the step in ${home}`,
      );
    }
    if (store === undefined) {
      throw new ResidencyViolationError(
        `input of ${stepExecutionId} holds an output resident in ${home} (${ref}) and the worker has no payloadStore to read it`,
      );
    }
    return store.fetch(ref);
  }
  if (Array.isArray(input)) {
    return Promise.all(input.map((item) => resolveResidentInput(item, region, store, stepExecutionId)));
  }
  if (typeof input === 'object' && input !== null) {
    const entries = await Promise.all(
      Object.entries(input).map(
        async ([key, value]) => [key, await resolveResidentInput(value, region, store, stepExecutionId)] as const,
      ),
    );
    return Object.fromEntries(entries);
  }
  return input;
}

/**
 * A resident command's output (the control plane marks steps run outside the execution's
 * region `resident`): always stored in this region's payload store, whatever its size,
 * and replied as a reference naming the region. Without a store it cannot stay here, so
 * the attempt fails for good rather than send the data home.
 */
export async function residentOutput(
  store: PayloadStore | undefined,
  region: string | null,
  command: Pick<StepCommand, 'executionId' | 'stepExecutionId'>,
  output: unknown,
): Promise<{ outputRef: PayloadRef } | { failure: StepError }> {
  if (store?.store === undefined || region === null) {
    const error = new ResidencyViolationError(
      `output of ${command.stepExecutionId} is resident and the worker has no payloadStore (with store) in a region to keep it`,
    );
    return { failure: { code: error.code, message: error.message, retryable: false } };
  }
  const json = JSON.stringify(output ?? null);
  const bytes = Buffer.byteLength(json);
  try {
    const ref = await store.store({ executionId: command.executionId, json, bytes });
    return { outputRef: { ref, bytes, region } };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return {
      failure: {
        code: 'output_not_stored',
        message: `resident output of ${command.stepExecutionId} could not be stored: ${reason}`,
        retryable: true,
      },
    };
  }
}
