import { setTimeout as sleep } from 'node:timers/promises';
import type { KafkaMessage } from 'kafkajs';
import { MalformedRecordError } from '../errors.js';
import { isBrokerUnavailable } from '../kafka/broker-errors.js';
import { publishDeadLetter } from '../kafka/dead-letter.js';
import { decodeOutboxRecord, type OutboxRecord } from '../kafka/outbox-record.js';
import type { RecordProducer, RecordToSend } from '../kafka/producer.js';
import type { Logger } from '../logger.js';
import { commandTopic, stepCommandSchema, type StepCommand, type StepError } from '../protocol/messages.js';
import {
  CommandInvalidError,
  DeadlineExceededError,
  RegionMismatchError,
  RetriesExhausted,
} from './errors.js';
import { describeIssues } from './issues.js';
import type { WorkerConfig } from './options.js';
import { replyRecord, type ReplyBody, type ReplyHeaders } from './reply.js';
import { resolveInput } from './resolve-input.js';
import { runHandler } from './run-handler.js';
import type { SousError } from '../errors.js';

/** Where a record was read, and by which group (for dead letters). */
export interface RecordSource {
  readonly topic: string;
  readonly partition: number;
  readonly groupId: string;
}

/**
 * `done`: replied and/or dead-lettered, commit it. `abandoned`: the worker is closing
 * before the record could be settled; leave it uncommitted for the next owner.
 */
export type ProcessOutcome = 'done' | 'abandoned';

export interface CommandProcessorOptions {
  readonly config: WorkerConfig;
  readonly logger: Logger;
  readonly producer: RecordProducer;
  /** True once the worker is closing: nothing more is sent. */
  readonly isClosed: () => boolean;
  /** Lets the worker abort running handlers; returns the undo. */
  readonly track: (controller: AbortController) => () => void;
}

/** The worker is closing: stop where we are and leave the record uncommitted. */
class Abandon extends Error {}

/** Producing failed for a reason other than an unreachable broker, this many times. */
class GaveUp extends Error {
  constructor(
    readonly error: Error,
    readonly attempts: number,
  ) {
    super(error.message, { cause: error });
  }
}

const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)));

/** The code a dead letter names: a sous code, or a kafkajs protocol error's type. */
function codeOf(error: Error): string | undefined {
  const { code, type } = error as { code?: unknown; type?: unknown };
  if (typeof code === 'string') return code;
  if (typeof type === 'string') return type;
  return undefined;
}

/**
 * Processes one command record from start to end: decode and validate it, reply
 * `step.started`, run the handler, reply its outcome, and send poison records to the DLT.
 * Returns only when the record may be committed (or the worker is closing); never throws.
 */
export function createCommandProcessor(options: CommandProcessorOptions): (
  message: KafkaMessage,
  source: RecordSource,
) => Promise<ProcessOutcome> {
  const { config, producer } = options;
  const log = options.logger;

  /** Waits before try `attempt` (2, 3, ...): 200 ms doubling, at most 5 s. */
  async function backoff(attempt: number): Promise<void> {
    if (options.isClosed()) throw new Abandon();
    await sleep(Math.min(5000, 200 * 2 ** Math.max(0, attempt - 2)));
    if (options.isClosed()) throw new Abandon();
  }

  /**
   * Produces records. An unreachable broker is waited for as long as it takes (nothing
   * is wrong with the record); a refusal is tried `maxDeliveryAttempts` times, then
   * thrown as GaveUp.
   */
  async function produce(records: readonly RecordToSend[]): Promise<void> {
    for (let attempt = 1, waits = 1; ; ) {
      if (options.isClosed()) throw new Abandon();
      try {
        await producer.send(records);
        return;
      } catch (error) {
        if (isBrokerUnavailable(error)) {
          log.warn({ err: error }, 'Kafka unreachable; waiting to send again');
          await backoff(Math.min(++waits, 6));
          continue;
        }
        if (attempt >= config.maxDeliveryAttempts) throw new GaveUp(asError(error), attempt);
        log.warn({ err: error, attempt }, 'Kafka refused a record; trying again');
        await backoff(++attempt);
      }
    }
  }

  /** Sends the record to `<topic>.DLT`, trying until it is stored (or the worker closes). */
  async function deadLetter(
    message: KafkaMessage,
    source: RecordSource,
    error: Error,
    attempts: number,
  ): Promise<void> {
    const code = codeOf(error);
    log.error(
      { topic: source.topic, partition: source.partition, offset: message.offset, code, reason: error.message },
      'command dead-lettered',
    );
    const letter = {
      topic: source.topic,
      partition: source.partition,
      message,
      error: { name: error.name, message: error.message, stack: error.stack ?? '', ...(code === undefined ? {} : { code }) },
      consumerGroup: source.groupId,
      attempts,
    };
    for (let attempt = 2; ; attempt++) {
      if (options.isClosed()) throw new Abandon();
      try {
        await publishDeadLetter(producer, letter);
        return;
      } catch (publishError) {
        log.error({ err: publishError }, 'dead letter could not be sent; trying again');
        await backoff(Math.min(attempt, 6));
      }
    }
  }

  async function processCommand(message: KafkaMessage, source: RecordSource): Promise<void> {
    let record: OutboxRecord;
    try {
      record = decodeOutboxRecord(source.topic, source.partition, message);
    } catch (error) {
      if (error instanceof MalformedRecordError) return deadLetter(message, source, error, 1);
      throw error;
    }
    const parsed = stepCommandSchema.safeParse(record.payload);
    if (!parsed.success) {
      const error = new CommandInvalidError(`invalid step command: ${describeIssues(parsed.error, 'payload')}`, {
        cause: parsed.error,
      });
      return deadLetter(message, source, error, 1);
    }
    const command: StepCommand = parsed.data;
    const capability = config.capabilities.get(command.capability);
    if (capability === undefined || commandTopic(command.capability) !== source.topic) {
      const error = new CommandInvalidError(`a command for capability ${command.capability} arrived on ${source.topic}`);
      return deadLetter(message, source, error, 1);
    }

    const headers: ReplyHeaders = {
      traceparent: record.traceparent,
      correlationId: record.correlationId,
      idempotencyKey: record.idempotencyKey ?? command.idempotencyKey,
    };
    const reply = (body: ReplyBody) => produce([replyRecord(command, body, config.workerId, headers)]);
    const stepLog = log.child({
      executionId: command.executionId,
      stepId: command.stepId,
      stepExecutionId: command.stepExecutionId,
      capability: command.capability,
      attempt: command.attempt,
    });
    /** The command is at fault: the step fails for good (so the execution does not hang) and the command is kept. */
    const refuse = async (error: SousError) => {
      stepLog.warn({ code: error.code, reason: error.message }, 'command refused');
      await reply({ kind: 'step.failed', error: { code: error.code, message: error.message, retryable: false } });
      await deadLetter(message, source, error, 1);
    };
    /** Replies a failed attempt; on the last attempt the policy allows, the command goes to the DLT too. */
    const fail = async (error: StepError) => {
      await reply({ kind: 'step.failed', error });
      if (error.retryable && command.maxAttempts !== undefined && command.attempt >= command.maxAttempts) {
        const exhausted = new RetriesExhausted(
          error.code,
          `retries exhausted: attempt ${command.attempt} of ${command.maxAttempts} failed: ${error.message}`,
        );
        await deadLetter(message, source, exhausted, command.attempt);
      }
    };

    if (config.region !== undefined && command.region !== undefined && command.region !== config.region) {
      return refuse(
        new RegionMismatchError(`a command for region ${command.region} reached a worker in region ${config.region}`),
      );
    }
    if (command.deadline !== undefined && Date.parse(command.deadline) <= Date.now()) {
      // Lag outlived the attempt: the control plane has timed it out already. Do not start it.
      const late = new DeadlineExceededError(`the deadline ${command.deadline} passed before the command was taken`);
      stepLog.warn(late.message);
      return fail({ code: late.code, message: late.message, retryable: late.retryable });
    }
    const input = await resolveInput({
      command,
      capability,
      payloadStore: config.payloadStore,
      attempts: config.maxDeliveryAttempts,
      backoff,
    });
    if (input.kind === 'refused') return refuse(input.error);
    if (input.kind === 'unavailable') return fail(input.error);

    await reply({ kind: 'step.started' });
    const outcome = await runHandler({
      capability,
      command,
      input: input.input,
      traceparent: record.traceparent,
      correlationId: record.correlationId,
      logger: stepLog,
      maxReplyBytes: config.maxReplyBytes,
      track: options.track,
      sendHeartbeat: async (progress) => {
        if (options.isClosed()) return;
        await producer.send([
          replyRecord(
            command,
            { kind: 'step.heartbeat', ...(progress === undefined ? {} : { progress }) },
            config.workerId,
            headers,
          ),
        ]);
      },
    });
    switch (outcome.kind) {
      case 'completed':
        return reply({ kind: 'step.completed', output: outcome.output });
      case 'failed':
        return fail(outcome.error);
      case 'deferred':
        stepLog.debug('completion deferred');
        return;
      case 'abandoned':
        stepLog.warn('handler gave up as the worker stops; the command goes to another instance');
        throw new Abandon();
    }
  }

  return async (message, source) => {
    try {
      await processCommand(message, source);
      return 'done';
    } catch (thrown) {
      if (thrown instanceof Abandon) return 'abandoned';
      // Producing kept failing, or a fault of the worker itself: keep the command, never drop it.
      const error = thrown instanceof GaveUp ? thrown.error : asError(thrown);
      const attempts = thrown instanceof GaveUp ? thrown.attempts : 1;
      log.error({ err: error, topic: source.topic, offset: message.offset }, 'command could not be processed');
      try {
        await deadLetter(message, source, error, attempts);
        return 'done';
      } catch {
        return 'abandoned';
      }
    }
  };
}
