import { newId } from '../uuid.js';
import type { EngineEvent } from '../engine/events.js';
import type { ExecutionState } from '../engine/state.js';
import { builtOutboxRow } from '../outbox/write-outbox.js';
import type { StepCommand, StepError } from '../protocol/messages.js';
import { SHARD_CONTROL_TOPIC, type StepCancel } from '../protocol/shards.js';
import type { ChildFinishedMessage } from '../protocol/control-messages.js';
import type { OutboxRow } from '../store/outbox.js';
import type { PayloadRow } from '../store/payloads.js';
import type { DecisionEnvironment } from './decision-environment.js';
import { crossesRegion } from '../regions/cross-region-route.js';
import { relayTopicFor, routingHeaders } from '../relay/routing.js';
import { regionInboxTopic } from '../regions/region-inbox.js';

type StepScheduled = Extract<EngineEvent, { type: 'StepScheduled' }>;

/** The same on every attempt and redelivery of a step, so a worker can apply it once. */
export function idempotencyKeyOf(executionId: string, stepKey: string): string {
  return `${executionId}/${stepKey}`;
}

/** A step command's outbox row, and the claim-check payload it refers to when its input is large. */
export interface CommandRows {
  readonly outbox: OutboxRow;
  readonly payload?: PayloadRow;
}

/** The outbox row that sends a scheduled step to its capability's topic (pure: the caller writes it). */
export function commandMessage(
  env: DecisionEnvironment,
  state: ExecutionState,
  event: StepScheduled,
  /** The command's PRODUCER span context (null: not traced). */
  traceparent: string | null,
  replyTopic: string,
  /** Where the routing sends it (the shard registry chooses among the capability's topics). */
  topic: string,
): CommandRows {
  const idempotencyKey = idempotencyKeyOf(state.executionId, event.stepKey);
  const inputText = JSON.stringify(event.input ?? null);
  const bytes = Buffer.byteLength(inputText);
  // A step resident in another region: the command travels through the relay, addressed
  // to that region's topic, and its replies come back through this region's relay topic.
  const home = crossesRegion(env.region, event.region, topic) ? env.region : undefined;
  const crossing = home !== undefined;
  const replyVia = home === undefined ? undefined : { region: home, topic: relayTopicFor(home) };
  let carried: Pick<StepCommand, 'input' | 'inputRef'>;
  let payload: PayloadRow | undefined;
  // The claim check is in this region's database, which a worker elsewhere cannot read:
  // a crossing input travels inline (up to the outbox's message limit).
  if (bytes > env.maxInlinePayloadBytes && !crossing) {
    // Claim check: the command carries a reference; the data stays in PostgreSQL.
    const ref = newId();
    payload = { id: ref, executionId: state.executionId, data: inputText, bytes };
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
    ...(replyVia === undefined ? {} : { replyVia, resident: true }),
    idempotencyKey,
    ...(startToCloseMs === undefined
      ? {}
      : { deadline: new Date(Date.parse(event.at) + (scheduleToStartMs ?? 0) + startToCloseMs).toISOString() }),
    ...(scheduleToStartMs === undefined
      ? {}
      : { startBy: new Date(Date.parse(event.at) + scheduleToStartMs).toISOString() }),
    ...(heartbeatMs === undefined ? {} : { heartbeatTimeoutMs: heartbeatMs }),
    ...(event.maxAttempts === undefined ? {} : { maxAttempts: event.maxAttempts }),
    ...(event.region === undefined ? {} : { region: event.region }),
    ...(event.contract === undefined ? {} : { contract: event.contract }),
  };
  const outbox = builtOutboxRow({
    id: event.stepExecutionId,
    topic,
    // Per step, not per execution: a forEach's items spread over partitions (so over
    // workers), while the attempts of one step stay in order on one partition.
    key: idempotencyKey,
    aggregateType: 'execution',
    eventType: 'step.command',
    payload: JSON.stringify(command),
    ...(traceparent === null ? {} : { traceparent }),
    correlationId: state.idempotencyKey ?? state.executionId,
    idempotencyKey,
    // Addressed to that region's control plane (its inbox), which routes it by its own
    // shard registry: the shards there are its to choose (docs/regions.md).
    ...(crossing && event.region !== undefined
      ? { headers: routingHeaders(event.region, regionInboxTopic(event.region)) }
      : {}),
  });
  return payload === undefined ? { outbox } : { outbox, payload };
}

/**
 * Tells the shards an attempt was cancelled: the one running it aborts its handler's
 * signal. An attempt sent to another region (`remoteRegion`) is cancelled there: the
 * cancel travels like its command, through the relay to that region's control plane,
 * which drops the command if it still holds it and tells its own shards otherwise.
 */
export function stepCancelMessage(
  executionId: string,
  stepExecutionId: string,
  reason: string,
  remoteRegion?: string,
): OutboxRow {
  const messageId = newId();
  const payload: StepCancel = { kind: 'step.cancel', messageId, executionId, stepExecutionId, reason };
  return builtOutboxRow({
    id: messageId,
    topic: remoteRegion === undefined ? SHARD_CONTROL_TOPIC : relayTopicFor(remoteRegion),
    // Keyed by the execution: every cancel of it in one partition, after nothing it must pass.
    key: executionId,
    aggregateType: 'execution',
    eventType: 'step.cancel',
    payload: JSON.stringify(payload),
    ...(remoteRegion === undefined ? {} : { headers: routingHeaders(remoteRegion, regionInboxTopic(remoteRegion)) }),
  });
}

/** Tells a parent execution, through its reply topic, that a sub-recipe execution ended. */
export function childFinishedMessage(
  replyTopic: string,
  parentExecutionId: string,
  childExecutionId: string,
  status: 'completed' | 'failed' | 'cancelled',
  output: unknown,
  error: StepError | undefined,
  /** The message's PRODUCER span context (null: not traced). */
  traceparent: string | null,
  messageId: string = newId(),
): OutboxRow {
  const payload: ChildFinishedMessage = {
    kind: 'child.finished',
    messageId,
    executionId: parentExecutionId,
    childExecutionId,
    status,
    ...(output === undefined ? {} : { output }),
    ...(error === undefined ? {} : { error }),
  };
  return builtOutboxRow({
    id: messageId,
    topic: replyTopic,
    key: parentExecutionId,
    aggregateType: 'execution',
    eventType: 'child.finished',
    payload: JSON.stringify(payload),
    ...(traceparent === null ? {} : { traceparent }),
  });
}
