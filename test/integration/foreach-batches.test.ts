// A large forEach's replies decided in batches: replies to the one execution join a batch
// past replyBatchSize, each batch's decisions chain on the state they made, and the
// tables stay what the event log folds to.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { verifyExecution } from '../../src/control-plane/verify.js';
import type { RecipePlan, RetryPolicy } from '../../src/recipe/plan.js';
import { startTestControlPlane, waitForExecution } from '../helpers/control-plane.js';
import { testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, type TestWorker } from '../helpers/test-worker.js';

const kafka = testKafka();
const RETRY: RetryPolicy = {
  maxAttempts: 3,
  initialIntervalMs: 100,
  backoffCoefficient: 2,
  maxIntervalMs: 500,
  jitter: 0,
  nonRetryableErrorCodes: [],
};
const ns = uniqueName('fe').replaceAll('-', '');
const capability = `test${ns}.square`;
const ITEMS = 120;

let cp: ControlPlane & { replyTopic: string };
let worker: TestWorker;
const failedOnce = new Set<number>();

before(async () => {
  // Batches of 2 replies, unless the replies go to an execution already in the batch.
  cp = await startTestControlPlane({ replyBatchSize: 2 });
  worker = await startTestWorker(kafka, {
    [capability]: async (c) => {
      const { n } = c.input as { n: number };
      // Every seventh item fails once (a retry: its state stays in the execution meanwhile).
      if (n % 7 === 0 && !failedOnce.has(n)) {
        failedOnce.add(n);
        return { error: { code: 'flaky', message: 'try again', retryable: true } };
      }
      return { output: { square: n * n } };
    },
  });
});

after(async () => {
  await worker.stop();
  await cp.stop();
});

describe('a large forEach', () => {
  it('completes with its replies decided in batches larger than replyBatchSize, its tables matching its log', async () => {
    const plan: RecipePlan = {
      name: `${ns}.squares`.toLowerCase(),
      steps: [
        {
          id: 'each',
          type: 'forEach',
          items: 'input.items',
          concurrency: 40,
          output: 'each',
          steps: [
            {
              id: 'square',
              type: 'task',
              capability,
              output: 'square',
              retry: RETRY,
              timeouts: {},
              input: { expression: '{"n": item}' },
            },
          ],
        },
      ],
      output: 'outputs.each.square',
    };
    await cp.registerRecipe(plan);
    const items = Array.from({ length: ITEMS }, (_, i) => i + 1);
    const { executionId } = await cp.startExecution({ recipe: plan.name, input: { items } });
    const done = await waitForExecution(cp, executionId, undefined, 120_000);
    assert.equal(done.status, 'completed', JSON.stringify(done.error));
    assert.deepEqual(
      done.output,
      items.map((n) => n * n),
    );
    assert.deepEqual(await verifyExecution(cp.db, cp.environment.plans, executionId), []);
    const { values } = await cp.observability.metrics.replyBatchSize.get();
    const all = values.find((v) => v.metricName === 'sous_reply_batch_size_count')?.value ?? 0;
    const small = values.find((v) => v.metricName === 'sous_reply_batch_size_bucket' && v.labels.le === 2)?.value ?? 0;
    assert.ok(all > small, `some batch held more than replyBatchSize replies (${small} of ${all} held 2 or fewer)`);
  });
});
