import { z } from 'zod';
import { stepErrorSchema } from './messages.js';

/** Sent by the control plane to itself on the reply topic when a sub-recipe execution ends. */
export const childFinishedMessageSchema = z.strictObject({
  kind: z.literal('child.finished'),
  messageId: z.uuid(),
  /** The parent execution. */
  executionId: z.uuid(),
  childExecutionId: z.uuid(),
  status: z.enum(['completed', 'failed', 'cancelled']),
  output: z.unknown().optional(),
  error: stepErrorSchema.optional(),
});
export type ChildFinishedMessage = z.infer<typeof childFinishedMessageSchema>;
