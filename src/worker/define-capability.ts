import type { z } from 'zod';
import { commandTopic, deadLetterTopic } from '../protocol/messages.js';
import type { StepContext } from './context.js';
import { WorkerConfigError } from './errors.js';

/** The same rule recipes check capability names against (src/recipe/validate.ts). */
const CAPABILITY_NAME = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$/;
/** Kafka's limit on topic names; the DLT of the command topic is the longest name made. */
const MAX_TOPIC_LENGTH = 249;

export interface CapabilityOptions<I extends z.ZodType, O extends z.ZodType> {
  /** The logical operation, e.g. `payments.charge`; commands come from `sous.cmd.<name>`. */
  readonly name: string;
  /** Contract version, announced to the registry. A positive integer. @default 1 */
  readonly version?: number;
  /** Validates each command's input; the handler gets the parsed value. */
  readonly input: I;
  /** Validates the handler's output before it is replied; the reply carries the parsed value. */
  readonly output: O;
  /**
   * Runs one command. Return the output, or throw: a StepFailure (`retryableError`,
   * `terminalError`) fails the step with its code; any other error fails it as
   * retryable `unhandled_error`. After `context.deferCompletion()` the return value is
   * ignored.
   */
  readonly handler: (input: z.output<I>, context: StepContext) => Promise<z.input<O>>;
}

/** A declared capability: what `createWorker` runs. */
export interface Capability<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly version: number;
  readonly input: I;
  readonly output: O;
  readonly handler: (input: z.output<I>, context: StepContext) => Promise<z.input<O>>;
}

/**
 * Declares something a service can execute, with typed, validated input and output.
 * Throws WorkerConfigError when the name or version is not acceptable.
 */
export function defineCapability<I extends z.ZodType, O extends z.ZodType>(
  options: CapabilityOptions<I, O>,
): Capability<I, O> {
  if (!CAPABILITY_NAME.test(options.name)) {
    throw new WorkerConfigError(
      `capability name ${JSON.stringify(options.name)} must be dot-separated lower-case words, like payments.charge`,
    );
  }
  if (deadLetterTopic(commandTopic(options.name)).length > MAX_TOPIC_LENGTH) {
    throw new WorkerConfigError(`capability name ${options.name} is too long for a Kafka topic name`);
  }
  const version = options.version ?? 1;
  if (!Number.isInteger(version) || version < 1)
    throw new WorkerConfigError(`capability ${options.name}: version must be a positive integer, got ${String(version)}`);
  // Guards callers from plain JavaScript.
  if (typeof options.handler !== 'function')
    throw new WorkerConfigError(`capability ${options.name}: handler must be an async function`);
  return Object.freeze({
    name: options.name,
    version,
    input: options.input,
    output: options.output,
    handler: options.handler,
  });
}
