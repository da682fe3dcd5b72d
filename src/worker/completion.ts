import { context as otelContext } from '@opentelemetry/api';
import { createKafka, type Kafka } from '../kafka/kafka-client.js';
import { createRecordProducer } from '../kafka/producer.js';
import { decodeCompletionToken } from '../protocol/completion-token.js';
import type { StepError } from '../protocol/messages.js';
import { WorkerConfigError } from './errors.js';
import { contextFromTraceparent } from '../observability/trace-context.js';
import type { ReplyBody } from './reply.js';
import { sendReply } from './traced-reply.js';

export interface CompletionClient {
  /** Completes the step attempt the token names (from a handler's `deferCompletion()`). */
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
  workerId?: string;
}): CompletionClient {
  if (options.kafka === undefined && (options.brokers === undefined || options.brokers.length === 0)) {
    throw new WorkerConfigError('createCompletionClient needs kafka or brokers');
  }
  const kafka = options.kafka ?? createKafka({ brokers: options.brokers ?? [], clientId: 'sous-completion' });
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
    completeStep: (token, output) => send(token, { kind: 'step.completed', output: output ?? null }),
    failStep: (token, error) => send(token, { kind: 'step.failed', error }),
    heartbeat: (token, progress) =>
      send(token, { kind: 'step.heartbeat', ...(progress === undefined ? {} : { progress }) }),
    close: () => producer.disconnect(),
  };
}
