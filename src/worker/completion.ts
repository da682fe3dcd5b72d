import { context as otelContext } from '@opentelemetry/api';
import { createKafka, type Kafka } from '../kafka/kafka-client.js';
import type { KafkaSecurityOptions } from '../security/config.js';
import { createRecordProducer } from '../kafka/producer.js';
import { decodeCompletionToken } from '../protocol/completion-token.js';
import type { StepError } from '../protocol/messages.js';
import { OutputNotStoredError, WorkerConfigError } from './errors.js';
import { carriedOutput } from './output-ref.js';
import type { PayloadStore } from './payload-store.js';
import { contextFromTraceparent } from '../observability/trace-context.js';
import type { ReplyBody } from './reply.js';
import { sendReply } from './traced-reply.js';

export interface CompletionClient {
  /**
   * Completes the step attempt the token names (from a handler's `deferCompletion()`). An
   * output over the payload store's inline limit goes by reference; a store that fails
   * throws OutputNotStoredError (retryable: nothing was sent).
   */
  completeStep(token: string, output: unknown): Promise<void>;
  failStep(token: string, error: StepError): Promise<void>;
  heartbeat(token: string, progress?: unknown): Promise<void>;
  close(): Promise<void>;
}

/**
 * Finishes long-running steps from any process — not only the worker that took the
 * command. The control plane accepts it only while that attempt is still in flight.
 */
export function createCompletionClient(options: {
  kafka?: Kafka;
  brokers?: readonly string[];
  /** TLS and SASL to the brokers, when `kafka` is not given (as a worker's `kafkaSecurity`). @default plaintext */
  kafkaSecurity?: KafkaSecurityOptions;
  workerId?: string;
  /** Stores outputs over its inline limit (as a worker's does). @default none: outputs go inline */
  payloadStore?: PayloadStore;
}): CompletionClient {
  if (options.kafka === undefined && (options.brokers === undefined || options.brokers.length === 0)) {
    throw new WorkerConfigError('createCompletionClient needs kafka or brokers');
  }
  const kafka =
    options.kafka ??
    createKafka({
      brokers: options.brokers ?? [],
      clientId: 'sous-completion',
      ...(options.kafkaSecurity === undefined ? {} : { security: options.kafkaSecurity }),
    });
  const producer = createRecordProducer(kafka);
  const workerId = options.workerId ?? 'completion-client';
  const send = async (token: string, body: ReplyBody) => {
    const data = decodeCompletionToken(token);
    // The token carries the handler's span that deferred the step: the reply stays in
    // the execution's trace whatever process completes it (an older token: the caller's).
    const parent = contextFromTraceparent(data.traceparent, undefined, otelContext.active()) ?? otelContext.active();
    await sendReply(producer, parent, data, body, workerId);
  };
  return {
    completeStep: async (token, output) => {
      const { executionId, stepExecutionId } = decodeCompletionToken(token);
      const carried = await carriedOutput(options.payloadStore, { executionId, stepExecutionId }, output);
      if ('failure' in carried) throw new OutputNotStoredError(carried.failure.message);
      await send(token, { kind: 'step.completed', ...carried });
    },
    failStep: (token, error) => send(token, { kind: 'step.failed', error }),
    heartbeat: (token, progress) =>
      send(token, { kind: 'step.heartbeat', ...(progress === undefined ? {} : { progress }) }),
    close: () => producer.disconnect(),
  };
}
