import { stepCommandSchema, type StepCommand } from '../protocol/messages.js';
import { stepCancelSchema, type StepCancel } from '../protocol/shards.js';
import type { Route, StepNeeds, WaitCode } from '../shards/route.js';

/**
 * The topic of a region's cluster where the relay puts what other regions ask of that
 * region's control plane: commands of steps resident there, and cancels of them. The
 * control plane of the region reads it, routes each command by its own shard registry (as
 * it routes its own steps) and sends it to the chosen topic through its own outbox.
 */
export function regionInboxTopic(region: string): string {
  return `sous.inbox-${region}`;
}

/** Why a record of the inbox is not acted on: a stable code. */
export type InboxRefusal = 'not_a_command' | 'wrong_region' | 'no_reply_route';

/** What the control plane does with one record of its region inbox (pure). */
export type InboxAction =
  | { readonly kind: 'dispatch'; readonly command: StepCommand; readonly topic: string }
  | { readonly kind: 'hold'; readonly command: StepCommand; readonly code: WaitCode; readonly reason: string }
  | { readonly kind: 'cancel'; readonly cancel: StepCancel }
  | { readonly kind: 'refuse'; readonly code: InboxRefusal; readonly reason: string };

/**
 * A command for a step resident in `localRegion` is routed by this region's registry:
 * sent to the topic of a live shard's capability (and contract), or held with the reason
 * while none can take it. A cancel is passed on to the shards. Anything else is refused
 * with a code (dead-lettered by the caller): a command for another region, or one with
 * no way home for its reply, must not run here.
 */
export function inboxAction(payload: unknown, localRegion: string, route: (needs: StepNeeds) => Route): InboxAction {
  const cancel = stepCancelSchema.safeParse(payload);
  if (cancel.success) return { kind: 'cancel', cancel: cancel.data };
  const parsed = stepCommandSchema.safeParse(payload);
  if (!parsed.success) {
    return { kind: 'refuse', code: 'not_a_command', reason: `not a step command or cancel: ${parsed.error.message}` };
  }
  const command = parsed.data;
  if (command.region !== localRegion) {
    return {
      kind: 'refuse',
      code: 'wrong_region',
      reason: `command for region ${command.region ?? '(none)'} reached the inbox of ${localRegion}`,
    };
  }
  if (command.replyVia === undefined) {
    return { kind: 'refuse', code: 'no_reply_route', reason: 'a command from another region must name replyVia' };
  }
  const decision = route({
    capability: command.capability,
    region: localRegion,
    ...(command.contract === undefined ? {} : { contract: command.contract }),
  });
  return decision.kind === 'send'
    ? { kind: 'dispatch', command, topic: decision.topic }
    : { kind: 'hold', command, code: decision.code, reason: decision.reason };
}

/** The step key a command's idempotency key names (`<execution id>/<step key>`). */
export function stepKeyOf(command: StepCommand): string {
  const prefix = `${command.executionId}/`;
  return command.idempotencyKey.startsWith(prefix) ? command.idempotencyKey.slice(prefix.length) : command.stepId;
}
