import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KafkaMessage } from 'kafkajs';
import { z } from 'zod';
import type { MalformedRecordError } from '../errors.js';
import { publishDeadLetter } from '../kafka/dead-letter.js';
import { createKafka, type Kafka } from '../kafka/kafka-client.js';
import { runOutboxConsumer, type OutboxConsumer } from '../kafka/outbox-consumer.js';
import type { OutboxRecord } from '../kafka/outbox-record.js';
import { createRecordProducer, type RecordProducer } from '../kafka/producer.js';
import { ensureTopics } from '../kafka/topics.js';
import { logger as rootLogger, type Logger } from '../logger.js';
import { nulPath } from '../nul-path.js';
import {
  commandTopic,
  deadLetterTopic,
  stepCommandSchema,
  type StepCommand,
  type StepError,
} from '../protocol/messages.js';
import type { StepContext } from './context.js';
import type { Capability } from './define-capability.js';
import {
  CommandInvalidError,
  InputInvalidError,
  OutputInvalidError,
  PayloadUnavailableError,
  StepFailure,
  WorkerConfigError,
} from './errors.js';
import type { PayloadStore } from './payload-store.js';
import { replyRecord, type ReplyBody } from './reply.js';

export interface WorkerOptions {
  /** A kafkajs client, or `brokers` to make one. */
  readonly kafka?: Kafka;
  /** host:port of the brokers, when `kafka` is not given. */
  readonly brokers?: readonly string[];
  /** What this worker executes: it subscribes to `sous.cmd.<name>` of each, and nothing else. */
  readonly capabilities: readonly Capability[];
  /** Region this worker runs in (for residency routing). @default undefined */
  readonly region?: string;
  /** Commands run at once (one per partition at a time). @default 10 */
  readonly concurrency?: number;
  /**
   * Consumer group: instances sharing it share the commands.
   * @default `sous-worker.` + the capability names, sorted, joined by `+`
   */
  readonly groupId?: string;
  /** Names this instance in replies and logs. @default `<hostname>-<pid>-<random>` */
  readonly workerId?: string;
  /** In-process attempts at a command whose processing throws before it goes to the DLT. @default 3 */
  readonly maxDeliveryAttempts?: number;
  /** How long `stop()` lets running handlers finish before aborting them. @default 30000 */
  readonly drainTimeoutMs?: number;
  /** Stop gracefully on SIGTERM and SIGINT. @default true */
  readonly handleSignals?: boolean;
  /** Fetches inputs that came by reference (claim check). @default none: such commands fail */
  readonly payloadStore?: PayloadStore;
  readonly logger?: Logger;
}

export interface Worker {
  readonly workerId: string;
  readonly groupId: string;
  /** Joins the group and starts running commands. */
  start(): Promise<void>;
  /** Stops fetching, lets running handlers finish (up to the drain timeout), leaves the group. */
  stop(): Promise<void>;
}

// Strict: a misspelt option is an error, not silently ignored. Objects the worker takes
// as they are (a Kafka client, a payload store, a logger) are only checked for presence.
const optionsSchema = z.strictObject({
  kafka: z.custom<Kafka>((v) => typeof v === 'object' && v !== null).optional(),
  // An empty list is refused below, with "give kafka or brokers".
  brokers: z.array(z.string().regex(/^[^:\s]+:\d+$/, 'brokers must be host:port')).optional(),
  payloadStore: z.custom<PayloadStore>((v) => typeof v === 'object' && v !== null).optional(),
  logger: z.custom<Logger>((v) => typeof v === 'object' && v !== null).optional(),
  capabilities: z.array(z.object({ name: z.string() })).min(1, 'capabilities must declare at least one capability'),
  concurrency: z.number().int().min(1, 'concurrency must be at least 1').default(10),
  maxDeliveryAttempts: z.number().int().min(1, 'maxDeliveryAttempts must be at least 1').default(3),
  drainTimeoutMs: z.number().int().nonnegative().default(30_000),
  handleSignals: z.boolean().default(true),
  groupId: z.string().min(1).optional(),
  workerId: z.string().min(1).optional(),
  region: z.string().min(1).optional(),
});

/** An error that no redelivery can cure: the record goes to the DLT at once. */
class Poison extends Error {
  constructor(readonly reason: Error & { code?: string }) {
    super(reason.message);
  }
}

/**
 * A worker pulling step commands for its capabilities from Kafka. Options are checked
 * once here; a bad option throws WorkerConfigError naming it.
 */
export function createWorker(options: WorkerOptions): Worker {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`);
    throw new WorkerConfigError(`invalid worker options: ${problems.join('; ')}`, { cause: parsed.error });
  }
  const config = parsed.data;
  const names = options.capabilities.map((c) => c.name);
  if (new Set(names).size !== names.length)
    throw new WorkerConfigError(`capability declared twice: ${names.join(', ')}`);
  if (options.kafka === undefined && (options.brokers === undefined || options.brokers.length === 0)) {
    throw new WorkerConfigError('invalid worker options: give kafka or brokers');
  }
  const workerId = config.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const groupId = config.groupId ?? `sous-worker.${[...names].sort().join('+')}`;
  const kafka = options.kafka ?? createKafka({ brokers: options.brokers ?? [], clientId: workerId });
  const log = (options.logger ?? rootLogger).child({ component: 'worker', workerId });
  const capabilities = new Map(options.capabilities.map((c) => [c.name, c]));
  const topics = names.map(commandTopic);
  const producer: RecordProducer = createRecordProducer(kafka);
  const inFlight = new Set<AbortController>();
  let consumer: OutboxConsumer | undefined;
  let stopping: Promise<void> | undefined;
  const onSignal = () => void worker.stop();

  const send = (command: StepCommand, body: ReplyBody) => producer.send([replyRecord(command, body, workerId)]);

  async function deadLetter(
    topic: string,
    partition: number,
    message: KafkaMessage,
    error: Error & { code?: string },
    attempts: number,
  ) {
    log.error(
      { topic, partition, offset: message.offset, code: error.code, reason: error.message },
      'command dead-lettered',
    );
    await publishDeadLetter(producer, { topic, partition, message, error, consumerGroup: groupId, attempts });
  }

  async function resolveInput(command: StepCommand): Promise<unknown> {
    if (command.inputRef === undefined) return command.input;
    if (options.payloadStore === undefined) {
      throw new PayloadUnavailableError(
        `input of ${command.stepExecutionId} is held by reference (${command.inputRef.ref}) and the worker has no payloadStore`,
      );
    }
    return options.payloadStore.fetch(command.inputRef.ref);
  }

  /** Runs one command: validate, reply started, handle, reply the outcome. */
  async function run(record: OutboxRecord): Promise<void> {
    const parsed = stepCommandSchema.safeParse(record.payload);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      throw new Poison(new CommandInvalidError(`invalid step command: ${problems}`, { cause: parsed.error }));
    }
    const command = parsed.data;
    const capability = capabilities.get(command.capability);
    if (capability === undefined || commandTopic(command.capability) !== record.topic) {
      throw new Poison(new CommandInvalidError(`command for ${command.capability} arrived on ${record.topic}`));
    }
    let input: unknown;
    try {
      const raw = await resolveInput(command);
      const checked = capability.input.safeParse(raw);
      if (!checked.success) {
        const problems = checked.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ');
        throw new InputInvalidError(`input of ${command.capability} is invalid: ${problems}`, { cause: checked.error });
      }
      input = checked.data;
    } catch (error) {
      if (!(error instanceof InputInvalidError || error instanceof PayloadUnavailableError)) throw error;
      // The step fails for good (so the execution does not hang) and the command is kept.
      // The command is kept in the DLT and the step waits for an operator: fix the
      // worker (or patch the input) and reprocess the dead letter.
      await send(command, {
        kind: 'step.failed',
        error: { code: error.code, message: error.message, retryable: false },
        deadLettered: true,
      });
      throw new Poison(error);
    }

    await send(command, { kind: 'step.started' });
    const controller = new AbortController();
    inFlight.add(controller);
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
      traceparent: record.traceparent,
      correlationId: record.correlationId,
      signal: controller.signal,
      logger: log.child({ executionId: command.executionId, stepId: command.stepId, attempt: command.attempt }),
      heartbeat: (progress) =>
        send(command, { kind: 'step.heartbeat', ...(progress === undefined ? {} : { progress }) }),
      deferCompletion: () => {
        completion.deferred = true;
        return command.completionToken;
      },
    };
    let failure: StepError | undefined;
    try {
      const output: unknown = await capability.handler(input, context);
      if (completion.deferred) return;
      const checked = capability.output.safeParse(output);
      if (!checked.success) {
        const problems = checked.error.issues.map((i) => `${i.path.join('.') || '(output)'}: ${i.message}`).join('; ');
        const error = new OutputInvalidError(`output of ${command.capability} is invalid: ${problems}`);
        failure = { code: error.code, message: error.message, retryable: false };
      } else if (nulPath(checked.data) !== undefined) {
        // PostgreSQL cannot store it: the control plane would refuse the reply and the step hang.
        const error = new OutputInvalidError(
          `output of ${command.capability} is invalid: ${(nulPath(checked.data) ?? []).join('.') || '(output)'} holds a NUL character (\\u0000)`,
        );
        failure = { code: error.code, message: error.message, retryable: false };
      } else {
        await send(command, { kind: 'step.completed', output: checked.data ?? null });
        return;
      }
    } catch (error) {
      failure =
        error instanceof StepFailure
          ? {
              code: error.code,
              message: error.message,
              retryable: error.retryable,
              ...(error.details === undefined ? {} : { details: error.details }),
            }
          : {
              code: 'unhandled_error',
              message: error instanceof Error ? error.message : String(error),
              retryable: true,
              details: {
                name: error instanceof Error ? error.name : typeof error,
                stack: error instanceof Error ? error.stack : undefined,
              },
            };
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      inFlight.delete(controller);
    }
    const exhausted = failure.retryable && command.maxAttempts !== undefined && command.attempt >= command.maxAttempts;
    await send(command, { kind: 'step.failed', error: failure, ...(exhausted ? { deadLettered: true } : {}) });
    if (exhausted) {
      // Retries exhausted: keep the command for inspection and reprocessing.
      const error = Object.assign(
        new Error(`retries exhausted after ${command.attempt} attempts: ${failure.message}`),
        { name: 'RetriesExhausted', code: failure.code },
      );
      throw new Poison(error);
    }
  }

  async function handle(record: OutboxRecord, message: KafkaMessage): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await run(record);
        return;
      } catch (error) {
        if (error instanceof Poison) return deadLetter(record.topic, record.partition, message, error.reason, attempt);
        if (attempt >= config.maxDeliveryAttempts) {
          return deadLetter(
            record.topic,
            record.partition,
            message,
            error instanceof Error ? error : new Error(String(error)),
            attempt,
          );
        }
        log.warn(
          { reason: error instanceof Error ? error.message : String(error), attempt },
          'command processing failed; trying again',
        );
        await sleep(Math.min(5000, 200 * 2 ** (attempt - 1)));
      }
    }
  }

  const worker: Worker = {
    workerId,
    groupId,
    async start() {
      await ensureTopics(kafka, topics);
      await ensureTopics(kafka, topics.map(deadLetterTopic), { partitions: 1 });
      consumer = await runOutboxConsumer({
        kafka,
        groupId,
        topics,
        fromBeginning: true,
        partitionsConsumedConcurrently: config.concurrency,
        handle: (record, message) => handle(record, message),
        onMalformed: (error: MalformedRecordError, message, where) =>
          deadLetter(where.topic, where.partition, message, error, 1),
      });
      if (config.handleSignals) {
        process.once('SIGTERM', onSignal);
        process.once('SIGINT', onSignal);
      }
      log.info({ capabilities: names, groupId, concurrency: config.concurrency }, 'worker started');
    },
    stop() {
      stopping ??= (async () => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        const drained = consumer?.stop() ?? Promise.resolve();
        const timeout = sleep(config.drainTimeoutMs).then(() => 'timeout' as const);
        if ((await Promise.race([drained.then(() => 'drained' as const), timeout])) === 'timeout') {
          log.warn({ running: inFlight.size }, 'drain timeout: aborting running handlers');
          for (const controller of inFlight) controller.abort(new Error('worker stopping'));
          await drained;
        }
        await producer.disconnect();
        log.info('worker stopped');
      })();
      return stopping;
    },
  };
  return worker;
}
