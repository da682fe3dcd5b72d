import {
  context as otelContext,
  ROOT_CONTEXT,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
} from '@opentelemetry/api';
import { ResidencyViolationError, residentOutput, resolveResidentInput } from './resident-output.js';
import type { OutboxRecord } from '../kafka/outbox-record.js';
import { ATTR } from '../observability/span-attributes.js';
import { traceparentOf } from '../observability/trace-context.js';
import { completionTokenOf, decodeCompletionToken, encodeCompletionToken } from '../protocol/completion-token.js';
import type { Logger } from '../logger.js';
import { nulPath } from '../nul-path.js';
import { capabilityOfTopic, contractAccepts, formatContractRange } from '../protocol/shards.js';
import { stepCommandSchema, type StepCommand, type StepError } from '../protocol/messages.js';
import type { StepContext } from './context.js';
import type { Capability } from './define-capability.js';
import {
  CommandInvalidError,
  InputInvalidError,
  OutputInvalidError,
  PayloadUnavailableError,
  StepFailure,
} from './errors.js';
import { carriedOutput } from './output-ref.js';
import type { PayloadStore } from './payload-store.js';
import type { ReplyBody } from './reply.js';

/** What running a command needs from the worker around it. */
export interface RunEnvironment {
  readonly capabilities: ReadonlyMap<string, Capability>;
  readonly payloadStore: PayloadStore | undefined;
  /** The shard's region (null: none): a command bound to another region is refused. */
  readonly region: string | null;
  /** Sends a reply under a PRODUCER span child of `parent`; resolves once it is in Kafka. */
  readonly send: (command: StepCommand, body: ReplyBody, parent: Context) => Promise<void>;
  readonly startedReplyAfterMs: number;
  /** Handlers running now, aborted when the worker stops past its drain timeout. */
  readonly inFlight: Set<AbortController>;
  /** The same handlers by attempt (step execution id): a cancel from the control plane aborts one. */
  readonly running: Map<string, AbortController>;
  readonly log: Logger;
}

/** An error that no redelivery can cure: the record goes to the DLT at once. */
export class Poison extends Error {
  constructor(readonly reason: Error & { code?: string }) {
    super(reason.message);
  }
}

/**
 * Runs one command: validate, handle, reply. A short command gets one reply, its
 * outcome, carrying when it started; `step.started` goes out on its own only when the
 * control plane needs it (see `startReport`). Resolves once the last reply is sent.
 *
 * `span` is the command's CONSUMER span (the worker made it a child of the command's
 * context): the handler runs with it active, so a handler's own spans nest in it, and
 * every reply is sent under it.
 */
export async function runCommand(env: RunEnvironment, record: OutboxRecord, span: Span): Promise<void> {
  const traced = trace.setSpan(ROOT_CONTEXT, span);
  const command = parseCommand(record);
  span.setAttributes({
    [ATTR.executionId]: command.executionId,
    [ATTR.stepExecutionId]: command.stepExecutionId,
    [ATTR.stepAttempt]: command.attempt,
    [ATTR.capability]: command.capability,
    'sous.step.id': command.stepId,
  });
  const send = (body: ReplyBody) => env.send(command, body, traced);
  const capability = env.capabilities.get(command.capability);
  if (capability === undefined || capabilityOfTopic(record.topic) !== command.capability) {
    throw new Poison(new CommandInvalidError(`command for ${command.capability} arrived on ${record.topic}`));
  }
  // Residency, checked again here: a step bound to a region runs only in that region.
  if (command.region !== undefined && command.region !== env.region) {
    throw new Poison(
      new CommandInvalidError(
        `command for region ${command.region} arrived at a shard of ${env.region ?? 'no region'} (on ${record.topic})`,
      ),
    );
  }
  if (!contractAccepts(command.contract, capability.version)) {
    throw new Poison(
      new CommandInvalidError(
        `command for ${command.capability} at contract ${formatContractRange(command.contract ?? { min: 1 })} arrived at a shard of version ${capability.version} (on ${record.topic})`,
      ),
    );
  }
  let input: unknown;
  try {
    input = await validInput(env, capability, command);
  } catch (error) {
    if (error instanceof ResidencyViolationError) {
      // Data resident elsewhere may not come here: the step fails for good, the command is done.
      await send({ kind: 'step.failed', error: { code: error.code, message: error.message, retryable: false } });
      return;
    }
    if (!(error instanceof InputInvalidError || error instanceof PayloadUnavailableError)) throw error;
    // The step fails for good (so the execution does not hang) and the command is kept.
    // The command is kept in the DLT and the step waits for an operator: fix the
    // worker (or patch the input) and reprocess the dead letter.
    await send({
      kind: 'step.failed',
      error: { code: error.code, message: error.message, retryable: false },
      deadLettered: true,
    });
    throw new Poison(error);
  }

  const startedAt = new Date().toISOString();
  const started = startReport(env, command, startedAt, send);
  const controller = new AbortController();
  env.inFlight.add(controller);
  env.running.set(command.stepExecutionId, controller);
  const deadline = command.deadline === undefined ? undefined : Date.parse(command.deadline) - Date.now();
  const timer =
    deadline === undefined
      ? undefined
      : setTimeout(() => controller.abort(new Error('step deadline passed')), Math.max(0, deadline));
  // An object, not a let: the handler's callback sets it, which flow analysis cannot see.
  const completion = { deferred: false };
  const context: StepContext = {
    executionId: command.executionId,
    stepId: command.stepId,
    stepExecutionId: command.stepExecutionId,
    itemIndex: command.itemIndex,
    attempt: command.attempt,
    idempotencyKey: command.idempotencyKey,
    // The handler's span: a handler passing it on (an HTTP call) nests that work in the step.
    traceparent: traceparentOf(traced) ?? record.traceparent,
    correlationId: record.correlationId,
    signal: controller.signal,
    logger: env.log.child({ executionId: command.executionId, stepId: command.stepId, attempt: command.attempt }),
    heartbeat: (progress) => {
      // A heartbeat says the step runs: `step.started` goes first (queued in order before it).
      void started.now();
      return send({ kind: 'step.heartbeat', ...(progress === undefined ? {} : { progress }) });
    },
    deferCompletion: () => {
      completion.deferred = true;
      return withTraceparent(completionTokenOf(command), traceparentOf(traced));
    },
  };
  let outcome: { output: unknown } | { failure: StepError };
  try {
    const output: unknown = await otelContext.with(traced, () => capability.handler(input, context));
    outcome = { output };
  } catch (error) {
    outcome = { failure: failureOf(error) };
  } finally {
    // Before the outcome is sent: a `step.started` after it would be a reply for nothing.
    started.cancel();
    if (timer !== undefined) clearTimeout(timer);
    env.inFlight.delete(controller);
    if (env.running.get(command.stepExecutionId) === controller) env.running.delete(command.stepExecutionId);
  }

  if (completion.deferred && 'output' in outcome) {
    // Someone else completes the step later: it runs, so the control plane hears so now.
    await started.now();
    return;
  }
  const checked = 'failure' in outcome ? outcome : checkedOutput(capability, outcome.output);
  // A large output goes by reference through the payload store (output-ref.ts).
  const result =
    'failure' in checked
      ? checked
      : command.resident === true
        ? await residentOutput(env.payloadStore, env.region, command, checked.output)
        : await carriedOutput(env.payloadStore, command, checked.output);
  if (!('failure' in result)) {
    await send({ kind: 'step.completed', startedAt, ...result });
    return;
  }
  const failure = result.failure;
  const exhausted = failure.retryable && command.maxAttempts !== undefined && command.attempt >= command.maxAttempts;
  // The step failed (the record was processed): the span says so, with the step's error code.
  span.setAttribute('sous.step.error_code', failure.code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
  await send({
    kind: 'step.failed',
    startedAt,
    error: failure,
    ...(exhausted ? { deadLettered: true } : {}),
  });
  if (exhausted) {
    // Retries exhausted: keep the command for inspection and reprocessing.
    const error = Object.assign(new Error(`retries exhausted after ${command.attempt} attempts: ${failure.message}`), {
      name: 'RetriesExhausted',
      code: failure.code,
    });
    throw new Poison(error);
  }
}

/**
 * When `step.started` goes out on its own. At once when a timeout of the step runs from
 * the start or stops at it: the control plane arms start-to-close and heartbeat timers
 * when `step.started` arrives (so the window is the attempt's running time, not its time
 * in the queue, and a worker that dies mid-command is still timed out), and a
 * schedule-to-start timer fires unless it arrives in time. Otherwise only once the
 * handler has run `startedReplyAfterMs`, so a long command shows as running. At most
 * once; a failed send is logged, not retried: the outcome reply carries the start too.
 */
function startReport(
  env: RunEnvironment,
  command: StepCommand,
  startedAt: string,
  send: (body: ReplyBody) => Promise<void>,
) {
  let sent: Promise<void> | undefined;
  const now = (): Promise<void> =>
    (sent ??= send({ kind: 'step.started', startedAt }).catch((error: unknown) => {
      env.log.warn(
        { stepExecutionId: command.stepExecutionId, reason: error instanceof Error ? error.message : String(error) },
        'step.started reply not sent',
      );
    }));
  const atOnce =
    env.startedReplyAfterMs === 0 ||
    command.deadline !== undefined ||
    command.startBy !== undefined ||
    command.heartbeatTimeoutMs !== undefined;
  if (atOnce) void now();
  const timer = atOnce ? undefined : setTimeout(() => void now(), env.startedReplyAfterMs);
  return { now, cancel: () => clearTimeout(timer) };
}

/**
 * The completion token with the handler span's context in it, so that whoever completes
 * the step later replies in the execution's trace; the token as given when it does not decode.
 */
function withTraceparent(token: string, traceparent: string | undefined): string {
  if (traceparent === undefined) return token;
  try {
    return encodeCompletionToken({ ...decodeCompletionToken(token), traceparent });
  } catch {
    return token;
  }
}

function parseCommand(record: OutboxRecord): StepCommand {
  const parsed = stepCommandSchema.safeParse(record.payload);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new Poison(new CommandInvalidError(`invalid step command: ${problems}`, { cause: parsed.error }));
  }
  return parsed.data;
}

async function validInput(env: RunEnvironment, capability: Capability, command: StepCommand): Promise<unknown> {
  let raw: unknown = command.input;
  if (command.inputRef !== undefined) {
    if (env.payloadStore === undefined) {
      throw new PayloadUnavailableError(
        `input of ${command.stepExecutionId} is held by reference (${command.inputRef.ref}) and the worker has no payloadStore`,
      );
    }
    raw = await env.payloadStore.fetch(command.inputRef.ref);
  }
  raw = await resolveResidentInput(raw, env.region, env.payloadStore, command.stepExecutionId);
  const checked = capability.input.safeParse(raw);
  if (!checked.success) {
    const problems = checked.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ');
    throw new InputInvalidError(`input of ${command.capability} is invalid: ${problems}`, { cause: checked.error });
  }
  return checked.data;
}

/** The output as the capability's schema parses it, or why it cannot be replied. */
function checkedOutput(capability: Capability, output: unknown): { output: unknown } | { failure: StepError } {
  const checked = capability.output.safeParse(output);
  const invalid = (reason: string) => {
    const error = new OutputInvalidError(`output of ${capability.name} is invalid: ${reason}`);
    return { failure: { code: error.code, message: error.message, retryable: false } };
  };
  if (!checked.success) {
    return invalid(checked.error.issues.map((i) => `${i.path.join('.') || '(output)'}: ${i.message}`).join('; '));
  }
  // PostgreSQL cannot store it: the control plane would refuse the reply and the step hang.
  const path = nulPath(checked.data);
  if (path !== undefined) return invalid(`${path.join('.') || '(output)'} holds a NUL character (\\u0000)`);
  return { output: checked.data };
}

/** A handler's throw as the step's error: a StepFailure keeps its code and flag, anything else may be retried. */
function failureOf(error: unknown): StepError {
  if (error instanceof StepFailure) {
    return {
      code: error.code,
      message: error.message,
      retryable: error.retryable,
      ...(error.details === undefined ? {} : { details: error.details }),
    };
  }
  return {
    code: 'unhandled_error',
    message: error instanceof Error ? error.message : String(error),
    retryable: true,
    details: {
      name: error instanceof Error ? error.name : typeof error,
      stack: error instanceof Error ? error.stack : undefined,
    },
  };
}
