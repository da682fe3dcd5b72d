import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../src/db/schema.js';
import type { Kafka } from '../../src/kafka/kafka-client.js';
import { writeOutbox } from '../../src/outbox/write-outbox.js';
import { encodeCompletionToken } from '../../src/protocol/completion-token.js';
import { commandTopic, type StepCommand, type StepReply } from '../../src/protocol/messages.js';
import { createWorker } from '../../src/worker/create-worker.js';
import type { Capability, Worker } from '../../src/worker/index.js';
import { uniqueName } from './stack.js';

/*
 * Worker SDK tests drive a real SDK worker with commands written to the outbox exactly as
 * the control plane writes them, so each command reaches the worker through Debezium.
 */

/** A capability no other test (or earlier run) uses: `test<random hex>.<action>`. */
export const capabilityName = (action: string): string => `test${randomUUID().slice(0, 8)}.${action}`;

/** The kinds of `replies`, in order (`step.started`, `step.completed`, …). */
export const replyKinds = (replies: StepReply[]): StepReply['kind'][] => replies.map((r) => r.kind);

/** One command to write: its input, the Kafka key (default: its execution id) and fields to override. */
export interface CommandToSend {
  input: unknown;
  key?: string;
  extra?: Partial<StepCommand>;
}

export interface WorkerHarness {
  /** Writes one command to the outbox in a transaction of its own. */
  readonly sendCommand: (
    capability: string,
    replyTopic: string,
    input: unknown,
    extra?: Partial<StepCommand>,
  ) => Promise<StepCommand>;
  /** Writes commands to the outbox in one transaction (so they reach Kafka in this order). */
  readonly sendCommands: (capability: string, replyTopic: string, commands: CommandToSend[]) => Promise<StepCommand[]>;
  /** Starts an SDK worker in a consumer group of its own; `cleanup` stops it. */
  readonly startWorker: (
    capabilities: Capability[],
    extra?: Partial<Parameters<typeof createWorker>[0]>,
  ) => Promise<Worker>;
}

/**
 * A first-attempt command for step `stepId` of a new execution, as the control plane
 * builds it (completion token included), with `extra` fields overriding.
 */
export function stepCommand(
  capability: string,
  replyTopic: string,
  { input, extra, stepId = 'step' }: Pick<CommandToSend, 'input' | 'extra'> & { stepId?: string },
): StepCommand {
  const executionId = randomUUID();
  const stepExecutionId = randomUUID();
  return {
    kind: 'step.command',
    executionId,
    stepExecutionId,
    stepId,
    capability,
    attempt: 1,
    ...(input === undefined ? {} : { input }),
    replyTopic,
    idempotencyKey: `${executionId}/${stepId}`,
    completionToken: encodeCompletionToken({ executionId, stepExecutionId, replyTopic, capability }),
    ...extra,
  };
}

export function workerHarness(db: Kysely<Database>, kafka: Kafka, cleanup: (() => Promise<void>)[]): WorkerHarness {
  const sendCommands: WorkerHarness['sendCommands'] = async (capability, replyTopic, commands) => {
    const written = commands.map((command) => stepCommand(capability, replyTopic, command));
    await db.transaction().execute((trx) =>
      writeOutbox(
        trx,
        written.map((command, i) => ({
          topic: commandTopic(capability),
          key: commands[i]?.key ?? command.executionId,
          aggregateType: 'execution',
          eventType: 'step.command',
          payload: command,
          idempotencyKey: command.idempotencyKey,
        })),
      ),
    );
    return written;
  };
  return {
    sendCommands,
    sendCommand: async (capability, replyTopic, input, extra = {}) => {
      const [command] = await sendCommands(capability, replyTopic, [{ input, extra }]);
      if (command === undefined) throw new Error('one command was sent, none came back');
      return command;
    },
    startWorker: async (capabilities, extra = {}) => {
      const worker = createWorker({
        kafka,
        capabilities,
        groupId: uniqueName('test-worker'),
        handleSignals: false,
        ...extra,
      });
      await worker.start();
      cleanup.push(() => worker.stop());
      return worker;
    },
  };
}
