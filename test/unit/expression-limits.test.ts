import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXPRESSION_LIMITS, ExpressionError, evaluate } from '../../src/recipe/expressions.js';

const scope = { input: {}, outputs: {}, execution: { id: 'e', recipe: 'r', version: 1 } };

/** The evaluation fails with an ExpressionError whose message names the expression and matches `reason`. */
async function refused(source: string, reason: RegExp): Promise<void> {
  await assert.rejects(evaluate(source, scope), (e: unknown) => {
    assert.ok(e instanceof ExpressionError, String(e));
    assert.equal(e.code, 'SOUS_EXPRESSION_FAILED');
    assert.equal(e.retryable, false);
    assert.ok(e.message.startsWith(`expression ${JSON.stringify(source)} failed: `), e.message);
    assert.match(e.message, reason);
    return true;
  });
}

describe('expression limits', () => {
  it('stops an evaluation that runs past the time limit', async () => {
    const began = performance.now();
    await refused(
      '( $loop := function($n) { $n > 0 ? $loop($n - 1) : 0 }; $loop(1e12) )',
      new RegExp(`Evaluation timeout after ${EXPRESSION_LIMITS.timeoutMs} milliseconds`),
    );
    assert.ok(performance.now() - began < EXPRESSION_LIMITS.timeoutMs * 10);
  });

  it('stops recursion past the depth limit', async () => {
    await refused('( $f := function($n) { 1 + $f($n + 1) }; $f(0) )', /Stack overflow/);
  });

  it('refuses a sequence past the size limit, and a result past the byte limit', async () => {
    await refused('[1..2000000].($ * 2)', /sequence|exceed/i);
    await refused(`$pad("", ${EXPRESSION_LIMITS.maxResultBytes + 10}, "x")`, /over the limit of 16777216/);
  });

  it('leaves ordinary expressions alone', async () => {
    assert.equal(await evaluate('$sum([1..1000].($ * 2))', scope), 1001000);
    assert.equal(
      await evaluate('( $f := function($n) { $n < 2 ? $n : $f($n - 1) + $f($n - 2) }; $f(12) )', scope),
      144,
    );
  });
});
