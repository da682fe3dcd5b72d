import { z } from 'zod';

/*
 * A completion token lets any process finish a step attempt later (long commands): it
 * names the attempt and where its reply goes. It grants nothing by itself — the control
 * plane accepts a reply only for the attempt currently in flight.
 */

export const completionTokenSchema = z.strictObject({
  executionId: z.uuid(),
  stepExecutionId: z.uuid(),
  replyTopic: z.string().min(1),
  /** A cross-region step's reply route (see the command's replyVia). */
  replyVia: z.strictObject({ region: z.string().min(1), topic: z.string().min(1) }).optional(),
  capability: z.string().min(1),
  /** The W3C context of the handler span that deferred completion: the reply's parent. */
  traceparent: z.string().optional(),
});
export type CompletionTokenData = z.infer<typeof completionTokenSchema>;

export function encodeCompletionToken(data: CompletionTokenData): string {
  return Buffer.from(JSON.stringify(data)).toString('base64url');
}

/** Throws a ZodError or SyntaxError naming what is wrong with a token. */
export function decodeCompletionToken(token: string): CompletionTokenData {
  return completionTokenSchema.parse(JSON.parse(Buffer.from(token, 'base64url').toString('utf8')));
}

/** The completion token of a step command: the one it carries, or the one its fields make. */
export function completionTokenOf(command: {
  readonly executionId: string;
  readonly stepExecutionId: string;
  readonly replyTopic: string;
  readonly capability: string;
  readonly replyVia?: CompletionTokenData['replyVia'];
  readonly completionToken?: string | undefined;
}): string {
  return (
    command.completionToken ??
    encodeCompletionToken({
      executionId: command.executionId,
      stepExecutionId: command.stepExecutionId,
      replyTopic: command.replyTopic,
      ...(command.replyVia === undefined ? {} : { replyVia: command.replyVia }),
      capability: command.capability,
    })
  );
}
