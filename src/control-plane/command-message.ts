import { randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import type { EngineEvent } from '../engine/events.js';
import type { ExecutionState } from '../engine/state.js';
import type { OutboxMessage } from '../outbox/outbox-message.js';
import { commandTopic, type StepCommand, type StepError } from '../protocol/messages.js';
import { encodeCompletionToken } from '../protocol/completion-token.js';
import type { ChildFinishedMessage } from '../protocol/control-messages.js';
import type { DecisionEnvironment } from './run-decision.js';

type StepScheduled = Extract<EngineEvent, { type: 'StepScheduled' }>;

/** The same on every attempt and redelivery of a step, so a worker can apply it once. */
export function idempotencyKeyOf(executionId: string, stepKey: string): string {
  return `${executionId}/${stepKey}`;
}

/** The outbox message that sends a scheduled step to its capability's topic. */
export async function commandMessage(
  trx: Transaction<Database>,
  env: DecisionEnvironment,
  state: ExecutionState,
  event: StepScheduled,
  traceparent: string,
  replyTopic: string,
): Promise<OutboxMessage> {
  const idempotencyKey = idempotencyKeyOf(state.executionId, event.stepKey);
  const inputText = JSON.stringify(event.input ?? null);
  const bytes = Buffer.byteLength(inputText);
  let carried: Pick<StepCommand, 'input' | 'inputRef'>;
  if (bytes > env.maxInlinePayloadBytes) {
    // Claim check: the command carries a reference; the data stays in PostgreSQL.
    const ref = randomUUID();
    await sql`INSERT INTO sous.payload (id, execution_id, data, bytes) VALUES (${ref}, ${state.executionId}, ${inputText}::jsonb, ${bytes})`.execute(
      trx,
    );
    carried = { inputRef: { ref, bytes } };
  } else {
    carried = { input: event.input ?? null };
  }
  const { startToCloseMs, scheduleToStartMs, heartbeatMs } = event.timeouts;
  const command: StepCommand = {
    kind: 'step.command',
    executionId: state.executionId,
    stepExecutionId: event.stepExecutionId,
    stepId: event.stepId,
    ...(event.itemIndex === undefined ? {} : { itemIndex: event.itemIndex }),
    capability: event.capability,
    attempt: event.attempt,
    ...carried,
    replyTopic,
    idempotencyKey,
    completionToken: encodeCompletionToken({
      executionId: state.executionId,
      stepExecutionId: event.stepExecutionId,
      replyTopic,
      capability: event.capability,
    }),
    ...(startToCloseMs === undefined
      ? {}
      : { deadline: new Date(Date.parse(event.at) + (scheduleToStartMs ?? 0) + startToCloseMs).toISOString() }),
    ...(scheduleToStartMs === undefined
      ? {}
      : { startBy: new Date(Date.parse(event.at) + scheduleToStartMs).toISOString() }),
    ...(heartbeatMs === undefined ? {} : { heartbeatTimeoutMs: heartbeatMs }),
    ...(event.maxAttempts === undefined ? {} : { maxAttempts: event.maxAttempts }),
    ...(event.region === undefined ? {} : { region: event.region }),
  };
  return {
    id: event.stepExecutionId,
    topic: commandTopic(event.capability),
    // Per step, not per execution: a forEach's items spread over partitions (so over
    // workers), while the attempts of one step stay in order on one partition.
    key: idempotencyKey,
    aggregateType: 'execution',
    eventType: 'step.command',
    payload: command,
    traceparent,
    correlationId: state.idempotencyKey ?? state.executionId,
    idempotencyKey,
  };
}

/** Tells a parent execution, through its reply topic, that a sub-recipe execution ended. */
export function childFinishedMessage(
  replyTopic: string,
  parentExecutionId: string,
  childExecutionId: string,
  status: 'completed' | 'failed' | 'cancelled',
  output: unknown,
  error: StepError | undefined,
  traceparent: string,
): OutboxMessage {
  const messageId = randomUUID();
  const payload: ChildFinishedMessage = {
    kind: 'child.finished',
    messageId,
    executionId: parentExecutionId,
    childExecutionId,
    status,
    ...(output === undefined ? {} : { output }),
    ...(error === undefined ? {} : { error }),
  };
  return {
    id: messageId,
    topic: replyTopic,
    key: parentExecutionId,
    aggregateType: 'execution',
    eventType: 'child.finished',
    payload,
    traceparent,
  };
}
