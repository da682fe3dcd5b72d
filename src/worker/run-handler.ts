import type { Logger } from '../logger.js';
import type { StepCommand, StepError } from '../protocol/messages.js';
import { abortAt } from './abort-at.js';
import type { StepContext } from './context.js';
import type { Capability } from './define-capability.js';
import {
  DeadlineExceededError,
  OutputInvalidError,
  OutputTooLargeError,
  StepFailure,
  WorkerStoppingError,
} from './errors.js';
import { describeIssues } from './issues.js';
import { stepErrorOf } from './step-error.js';

/** How a handler's run ended. */
export type HandlerOutcome =
  | { readonly kind: 'completed'; readonly output: unknown }
  | { readonly kind: 'failed'; readonly error: StepError }
  /** It called `deferCompletion()`: someone else replies. */
  | { readonly kind: 'deferred' }
  /** It gave up because the worker is stopping: no reply, the command goes to another instance. */
  | { readonly kind: 'abandoned' };

export interface RunHandlerOptions {
  readonly capability: Capability;
  readonly command: StepCommand;
  /** The input, already validated by the capability's schema. */
  readonly input: unknown;
  readonly traceparent: string | undefined;
  readonly correlationId: string | undefined;
  readonly logger: Logger;
  readonly maxReplyBytes: number;
  /** Sends a heartbeat reply; may reject. */
  readonly sendHeartbeat: (progress: unknown) => Promise<void>;
  /** Lets the worker abort the handler when its drain timeout runs out; returns the undo. */
  readonly track: (controller: AbortController) => () => void;
}

/**
 * Runs a capability's handler once with its context: aborts `signal` at the command's
 * deadline, validates the output, and turns whatever the handler did into an outcome.
 * Never throws.
 */
export async function runHandler(options: RunHandlerOptions): Promise<HandlerOutcome> {
  const { capability, command, logger } = options;
  const controller = new AbortController();
  const untrack = options.track(controller);
  const deadline = command.deadline === undefined ? undefined : new Date(command.deadline);
  const cancelDeadline =
    deadline === undefined
      ? () => undefined
      : abortAt(
          controller,
          deadline.getTime(),
          () => new DeadlineExceededError(`the deadline of step ${command.stepId} (${command.deadline ?? ''}) passed`),
        );
  // An object rather than lets: the context's callbacks change it, which flow analysis cannot see.
  const state = { settled: false, deferred: false };
  const context: StepContext = {
    executionId: command.executionId,
    stepId: command.stepId,
    stepExecutionId: command.stepExecutionId,
    itemIndex: command.itemIndex,
    capability: command.capability,
    attempt: command.attempt,
    maxAttempts: command.maxAttempts,
    idempotencyKey: command.idempotencyKey,
    traceparent: options.traceparent,
    correlationId: options.correlationId,
    deadline,
    heartbeatTimeoutMs: command.heartbeatTimeoutMs,
    signal: controller.signal,
    logger,
    heartbeat: async (progress) => {
      if (state.settled || state.deferred) return;
      try {
        await options.sendHeartbeat(progress);
      } catch (error) {
        logger.warn({ err: error }, 'heartbeat could not be sent');
      }
    },
    deferCompletion: () => {
      state.deferred = true;
      return command.completionToken;
    },
  };

  const failed = (error: unknown, abortReason?: unknown): HandlerOutcome => ({
    kind: 'failed',
    error: stepErrorOf(error, abortReason),
  });
  try {
    const output: unknown = await capability.handler(options.input, context);
    if (state.deferred) return { kind: 'deferred' };
    const checked = capability.output.safeParse(output);
    if (!checked.success) {
      return failed(
        new OutputInvalidError(
          `output of ${capability.name} is invalid: ${describeIssues(checked.error, 'output')}`,
        ),
      );
    }
    let text: string;
    try {
      text = JSON.stringify(checked.data ?? null);
    } catch (error) {
      return failed(
        new OutputInvalidError(
          `output of ${capability.name} cannot travel as JSON: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
    }
    const bytes = Buffer.byteLength(text);
    if (bytes > options.maxReplyBytes) {
      return failed(
        new OutputTooLargeError(
          `output of ${capability.name} is ${bytes} bytes, more than the ${options.maxReplyBytes} a reply may carry`,
        ),
      );
    }
    return { kind: 'completed', output: JSON.parse(text) as unknown };
  } catch (error) {
    const reason: unknown = controller.signal.aborted ? controller.signal.reason : undefined;
    if (reason instanceof WorkerStoppingError && !(error instanceof StepFailure)) return { kind: 'abandoned' };
    return failed(error, reason);
  } finally {
    state.settled = true;
    cancelDeadline();
    untrack();
  }
}

