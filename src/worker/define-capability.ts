import type { z } from 'zod';
import type { StepContext } from './context.js';
import { WorkerConfigError } from './errors.js';

const CAPABILITY_NAME = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$/;

export interface CapabilityOptions<I extends z.ZodType, O extends z.ZodType> {
  /** The logical operation, e.g. `payments.charge`; commands come from `sous.cmd.<name>`. */
  readonly name: string;
  /** Contract version, announced to the registry. @default 1 */
  readonly version?: number;
  /** Validates each command's input; the handler gets the parsed value. */
  readonly input: I;
  /** Validates the handler's output before it is replied. */
  readonly output: O;
  readonly handler: (input: z.output<I>, context: StepContext) => Promise<z.input<O>>;
}

export interface Capability<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly version: number;
  readonly input: I;
  readonly output: O;
  readonly handler: (input: z.output<I>, context: StepContext) => Promise<z.input<O>>;
}

/** Declares something a service can execute, with typed, validated input and output. */
export function defineCapability<I extends z.ZodType, O extends z.ZodType>(
  options: CapabilityOptions<I, O>,
): Capability<I, O> {
  if (!CAPABILITY_NAME.test(options.name)) {
    throw new WorkerConfigError(
      `capability name ${JSON.stringify(options.name)} must look like domain.action (e.g. payments.charge)`,
    );
  }
  const version = options.version ?? 1;
  if (!Number.isInteger(version) || version < 1)
    throw new WorkerConfigError(`capability ${options.name}: version must be a positive integer`);
  return { name: options.name, version, input: options.input, output: options.output, handler: options.handler };
}
