import { createKafka, type Kafka } from '../kafka/kafka-client.js';
import { createRecordProducer } from '../kafka/producer.js';
import { stepErrorSchema, type StepError } from '../protocol/messages.js';
import { decodeCompletionToken } from './completion-token.js';
import type { Capability } from './define-capability.js';
import { OutputInvalidError, StepFailure, WorkerConfigError } from './errors.js';
import { describeIssues } from './issues.js';
import { replyRecord, type ReplyBody } from './reply.js';
import { stepErrorOf } from './step-error.js';

export interface CompletionClientOptions {
  /** A kafkajs client (`createKafka`); or give `brokers`. */
  readonly kafka?: Kafka;
  /** `host:port` of the brokers, when `kafka` is not given. */
  readonly brokers?: readonly string[];
  /** Names the sender in replies. @default 'completion-client' */
  readonly workerId?: string;
  /**
   * Capabilities whose outputs this client checks before replying: `completeStep` for
   * a token of one of them validates the output with its schema and throws
   * OutputInvalidError instead of replying. @default [] (outputs are sent as given)
   */
  readonly capabilities?: readonly Capability[];
}

export interface CompletionClient {
  /** Completes the step attempt the token names (from a handler's `deferCompletion()`). */
  completeStep(token: string, output: unknown): Promise<void>;
  /** Fails it: a StepFailure (`retryableError`, `terminalError`) or a plain StepError. */
  failStep(token: string, error: StepFailure | StepError): Promise<void>;
  /** Reports progress of a deferred step, keeping a step with a heartbeat timeout alive. */
  heartbeat(token: string, progress?: unknown): Promise<void>;
  close(): Promise<void>;
}

/**
 * Finishes long-running steps from any process — not only the worker that took the
 * command — with the completion token the command carried. The control plane accepts
 * such a reply only while that attempt is in flight. A bad token throws
 * CompletionTokenInvalidError and sends nothing.
 */
export function createCompletionClient(options: CompletionClientOptions): CompletionClient {
  if (options.kafka === undefined && (options.brokers === undefined || options.brokers.length === 0)) {
    throw new WorkerConfigError('invalid completion client options: give kafka (a kafkajs client) or brokers');
  }
  const kafka = options.kafka ?? createKafka({ brokers: options.brokers ?? [], clientId: 'sous-completion' });
  const producer = createRecordProducer(kafka);
  const workerId = options.workerId ?? 'completion-client';
  const capabilities = new Map((options.capabilities ?? []).map((c) => [c.name, c]));
  const send = async (token: string, body: ReplyBody) => {
    const address = decodeCompletionToken(token);
    await producer.send([replyRecord(address, body, workerId)]);
  };
  return {
    async completeStep(token, output) {
      const { capability } = decodeCompletionToken(token);
      const schema = capabilities.get(capability)?.output;
      let value: unknown = output;
      if (schema !== undefined) {
        const checked = schema.safeParse(output);
        if (!checked.success) {
          throw new OutputInvalidError(`output of ${capability} is invalid: ${describeIssues(checked.error, 'output')}`);
        }
        value = checked.data;
      }
      await send(token, { kind: 'step.completed', output: value ?? null });
    },
    async failStep(token, error) {
      let stepError: StepError;
      if (error instanceof StepFailure) {
        stepError = stepErrorOf(error);
      } else {
        const parsed = stepErrorSchema.safeParse(error);
        if (!parsed.success) throw new TypeError(`failStep: invalid error: ${describeIssues(parsed.error, 'error')}`);
        stepError = parsed.data;
      }
      await send(token, { kind: 'step.failed', error: stepError });
    },
    heartbeat: (token, progress) =>
      send(token, { kind: 'step.heartbeat', ...(progress === undefined ? {} : { progress }) }),
    close: () => producer.disconnect(),
  };
}

