import type { SousError } from '../errors.js';
import type { StepCommand, StepError } from '../protocol/messages.js';
import type { Capability } from './define-capability.js';
import { InputInvalidError, PayloadUnavailableError } from './errors.js';
import { describeIssues } from './issues.js';
import type { PayloadStore } from './payload-store.js';

/** The input a handler gets, or why it gets none. */
export type ResolvedInput =
  | { readonly kind: 'ok'; readonly input: unknown }
  /** The command itself is at fault (invalid input, missing payload): fail the step for good, dead-letter the command. */
  | { readonly kind: 'refused'; readonly error: SousError }
  /** The payload store stayed unreachable: fail this attempt as retryable. */
  | { readonly kind: 'unavailable'; readonly error: StepError };

export interface ResolveInputOptions {
  readonly command: StepCommand;
  readonly capability: Capability;
  readonly payloadStore: PayloadStore | undefined;
  /** Tries at fetching a claim-checked input before giving up on this attempt. */
  readonly attempts: number;
  /** Waits before try `n` (2, 3, ...); throws to give up at once (the worker is closing). */
  readonly backoff: (attempt: number) => Promise<void>;
}

/** Fetches a claim-checked input when needed, then validates it with the capability's schema. */
export async function resolveInput(options: ResolveInputOptions): Promise<ResolvedInput> {
  const { command, capability } = options;
  let raw: unknown = command.input;
  if (command.inputRef !== undefined) {
    const { ref } = command.inputRef;
    if (options.payloadStore === undefined) {
      return {
        kind: 'refused',
        error: new PayloadUnavailableError(
          `the input of step ${command.stepId} is held by reference (${ref}) and the worker has no payloadStore`,
        ),
      };
    }
    for (let attempt = 1; ; attempt++) {
      try {
        raw = await options.payloadStore.fetch(ref);
        break;
      } catch (error) {
        if (error instanceof PayloadUnavailableError) return { kind: 'refused', error };
        if (attempt >= options.attempts) {
          return {
            kind: 'unavailable',
            error: {
              code: 'payload_unreachable',
              message: `the input ${ref} could not be fetched after ${attempt} tries: ${error instanceof Error ? error.message : String(error)}`,
              retryable: true,
            },
          };
        }
        await options.backoff(attempt + 1);
      }
    }
  }
  const checked = capability.input.safeParse(raw);
  if (!checked.success) {
    return {
      kind: 'refused',
      error: new InputInvalidError(
        `input of ${capability.name} is invalid: ${describeIssues(checked.error, 'input')}`,
        { cause: checked.error },
      ),
    };
  }
  return { kind: 'ok', input: checked.data };
}
