import {
  completionTokenSchema,
  encodeCompletionToken,
  type CompletionTokenData,
} from '../protocol/completion-token.js';
import { CompletionTokenInvalidError } from './errors.js';
import { describeIssues } from './issues.js';

/*
 * A completion token names one step attempt and where its reply goes, so that any
 * process can finish a long command later: base64url of the JSON
 * `{ executionId, stepExecutionId, replyTopic, capability }`. The control plane issues
 * it in every command (`encodeCompletionToken`); it grants nothing by itself, since the
 * control plane applies a reply only to the attempt in flight. The format is defined in
 * src/protocol/completion-token.ts, shared with the control plane.
 */

export { encodeCompletionToken, type CompletionTokenData };

/** Reads a token; throws CompletionTokenInvalidError saying what is wrong with it. */
export function decodeCompletionToken(token: string): CompletionTokenData {
  let json: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(token)) throw new Error('it is not base64url');
    json = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch (error) {
    throw new CompletionTokenInvalidError(
      `invalid completion token: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  const parsed = completionTokenSchema.safeParse(json);
  if (!parsed.success) {
    throw new CompletionTokenInvalidError(`invalid completion token: ${describeIssues(parsed.error, 'token')}`, {
      cause: parsed.error,
    });
  }
  return parsed.data;
}
