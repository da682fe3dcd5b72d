import { z } from 'zod';
import { nulPath } from '../nul-path.js';

/*
 * What crosses Kafka between the control plane and workers. Commands are written to
 * the outbox and reach `sous.cmd.<capability>` through Debezium; replies are produced
 * by workers to the command's reply topic. Both are validated at the boundary.
 */

/** Topic of a capability's commands. */
export function commandTopic(capability: string): string {
  return `sous.cmd.${capability}`;
}

/** Dead-letter topic of a topic. */
export function deadLetterTopic(topic: string): string {
  return `${topic}.DLT`;
}

/** Default reply topic of the control plane. */
export const REPLY_TOPIC = 'sous.replies';

/** A payload stored in PostgreSQL instead of travelling in the message (claim check). */
export const payloadRefSchema = z.strictObject({
  ref: z.uuid(),
  bytes: z.number().int().nonnegative(),
  /** A resident output: stored in this region's payload store, never read by the home region. */
  region: z.string().min(1).optional(),
});
export type PayloadRef = z.infer<typeof payloadRefSchema>;

/** Where a cross-region step's replies go first: the home region's relay topic. */
export const replyViaSchema = z.strictObject({ region: z.string().min(1), topic: z.string().min(1) });
export type ReplyVia = z.infer<typeof replyViaSchema>;

export const stepCommandSchema = z.strictObject({
  kind: z.literal('step.command'),
  executionId: z.uuid(),
  /** One attempt of one step: replies name it. */
  stepExecutionId: z.uuid(),
  /** The step's id in the recipe. */
  stepId: z.string().min(1),
  /** Index of the item inside a forEach. */
  itemIndex: z.number().int().nonnegative().optional(),
  capability: z.string().min(1),
  attempt: z.number().int().positive(),
  /** The input, or a reference to it when it is large. */
  input: z.unknown().optional(),
  inputRef: payloadRefSchema.optional(),
  replyTopic: z.string().min(1),
  /**
   * A step run in another region than its execution's: replies go to `topic` (the relay
   * topic of the execution's region, in the worker's own cluster) with routing headers
   * naming `region` and `replyTopic`, and the relay carries them home (docs/regions.md).
   */
  replyVia: replyViaSchema.optional(),
  /** The output stays in the worker's region: stored there and replied by reference (src/protocol/resident.ts). */
  resident: z.boolean().optional(),
  /** Same on every attempt and redelivery of this step (also the Kafka header). */
  idempotencyKey: z.string().min(1),
  /**
   * Lets any instance complete this attempt later (long commands). The control plane no
   * longer sends it (every field of it is in the command; leaving it out saves ~200 bytes of
   * WAL and Kafka per step): the SDK derives it (completionTokenOf). Still accepted.
   */
  completionToken: z.string().min(1).optional(),
  /**
   * The attempt must reply before this instant (start-to-close; the latest it can be).
   * The control plane arms the step's start-to-close timer when `step.started` arrives,
   * so a worker sends `step.started` at once for a command carrying a deadline.
   */
  deadline: z.iso.datetime().optional(),
  /**
   * The attempt must start before this instant (schedule-to-start timeout): the worker
   * sends `step.started` at once, or the control plane times the attempt out.
   */
  startBy: z.iso.datetime().optional(),
  /** The step has a heartbeat timeout: the worker sends `step.started` at once (it arms the timer). */
  heartbeatTimeoutMs: z.number().int().positive().optional(),
  /** Attempts the step's retry policy allows: a retryable failure on the last goes to the DLT. */
  maxAttempts: z.number().int().positive().optional(),
  region: z.string().optional(),
  /** The contract versions the step accepts (the shard reading it serves one of them). */
  contract: z
    .strictObject({ min: z.number().int().positive(), max: z.number().int().positive().optional() })
    .optional(),
});
export type StepCommand = z.infer<typeof stepCommandSchema>;

export const stepErrorSchema = z.strictObject({
  code: z.string().min(1),
  message: z.string(),
  retryable: z.boolean(),
  details: z.unknown().optional(),
});
export type StepError = z.infer<typeof stepErrorSchema>;

const replyBase = {
  /** Unique per reply message: the control plane applies each once. */
  messageId: z.uuid(),
  executionId: z.uuid(),
  stepExecutionId: z.uuid(),
  workerId: z.string().min(1),
  at: z.iso.datetime(),
};

/**
 * When the worker began the attempt. On `step.completed`/`step.failed` it is the only
 * record of the start when the worker sent no `step.started` (a short command); absent
 * when the reply comes from elsewhere (a completion client finishing a deferred step).
 */
const startedAt = z.iso.datetime().optional();

export const stepReplySchema = z
  .discriminatedUnion('kind', [
    z.strictObject({ ...replyBase, kind: z.literal('step.started'), startedAt }),
    z.strictObject({
      ...replyBase,
      kind: z.literal('step.completed'),
      startedAt,
      output: z.unknown().optional(),
      outputRef: payloadRefSchema.optional(),
    }),
    z.strictObject({
      ...replyBase,
      kind: z.literal('step.failed'),
      startedAt,
      error: stepErrorSchema,
      /** The worker kept the command in `<topic>.DLT`: the step waits for an operator. */
      deadLettered: z.boolean().optional(),
    }),
    z.strictObject({ ...replyBase, kind: z.literal('step.heartbeat'), progress: z.unknown().optional() }),
  ])
  .superRefine((reply, ctx) => {
    const path = nulPath(reply);
    if (path !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path,
        message: 'holds a NUL character (\\u0000), which PostgreSQL cannot store',
      });
    }
  });
export type StepReply = z.infer<typeof stepReplySchema>;

/** Kafka headers of a dead-lettered record (besides the original record's own headers). */
export const DLT_HEADERS = {
  originalTopic: 'sous-dlt-original-topic',
  originalPartition: 'sous-dlt-original-partition',
  originalOffset: 'sous-dlt-original-offset',
  errorClass: 'sous-dlt-error-class',
  errorCode: 'sous-dlt-error-code',
  errorMessage: 'sous-dlt-error-message',
  errorStack: 'sous-dlt-error-stack',
  consumerGroup: 'sous-dlt-consumer-group',
  attempts: 'sous-dlt-attempts',
  failedAt: 'sous-dlt-failed-at',
} as const;
