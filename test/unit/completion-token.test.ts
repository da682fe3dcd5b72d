import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  completionTokenOf,
  decodeCompletionToken,
  encodeCompletionToken,
} from '../../src/protocol/completion-token.js';

const command = {
  executionId: '01a2289b-fbd1-7140-b7eb-fc7e2ce62740',
  stepExecutionId: '01a2289b-fcb9-76d6-9bd1-eca644353b51',
  replyTopic: 'sous.replies',
  capability: 'shop.charge',
};

describe('completion tokens', () => {
  it('derives the token of a command that carries none from its fields', () => {
    assert.deepEqual(decodeCompletionToken(completionTokenOf(command)), command);
  });

  it('keeps the token a command carries (commands of earlier control planes)', () => {
    const carried = encodeCompletionToken({ ...command, replyTopic: 'elsewhere' });
    assert.equal(completionTokenOf({ ...command, completionToken: carried }), carried);
  });

  it('names what is wrong with a bad token', () => {
    const bad = Buffer.from(JSON.stringify({ ...command, executionId: 'nope' })).toString('base64url');
    assert.throws(() => decodeCompletionToken(bad), /executionId/);
  });
});
