// The plan `recipe(...).build()` returns is accepted wherever a recipe is (compileRecipe,
// GraphQL registerRecipe(json:)): builder → JSON → compile gives the same plan and
// checksum, and a broken plan is refused naming the plan's own keys.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { orderSaga } from '../../examples/recipes/order-saga.js';
import {
  compileRecipe,
  parseRecipeYaml,
  planChecksum,
  recipe,
  RecipeInvalidError,
  type RecipePlan,
} from '../../src/recipe/index.js';

const examples = join(import.meta.dirname, '..', '..', 'examples', 'recipes');

/** What a client sends: the plan serialised and parsed again. */
const overTheWire = (plan: RecipePlan): unknown => JSON.parse(JSON.stringify(plan));

function refused(value: unknown): RecipeInvalidError {
  try {
    compileRecipe(value);
  } catch (error) {
    assert.ok(error instanceof RecipeInvalidError, String(error));
    return error;
  }
  assert.fail('the plan was accepted');
}

const allConstructs = () =>
  recipe('all-constructs')
    .describe('every construct once')
    .task('a', 'x.a', {
      region: 'eu-west',
      input: { amount: 'input.total' },
      when: 'input.total > 0',
      retry: { maxAttempts: 5, initialInterval: '2s', maxInterval: '5m', nonRetryableErrorCodes: ['bad'] },
      timeouts: { startToClose: '30s', heartbeat: '10s' },
      compensate: { capability: 'x.undo', input: 'outputs.a' },
    })
    .parallel('p', [(b) => b.task('b1', 'x.b1'), (b) => b.task('b2', 'x.b2').task('b3', 'x.b3')])
    .forEach('each', { items: 'input.items', concurrency: 3 }, (b) => b.task('item', 'x.item', { input: 'item' }))
    .subRecipe('child', 'other-recipe', { version: 2, input: 'input' })
    .sleep('nap', { duration: '1h' })
    .sleep('until', { until: 'input.at' })
    .waitForSignal('approval', { signal: 'approved', timeout: '2d', onTimeout: 'continue' })
    .output('outputs')
    .build();

describe('recipes: a plan is accepted as JSON', () => {
  it('builder → JSON → compileRecipe gives the same plan and checksum (every construct)', () => {
    const built = allConstructs();
    const again = compileRecipe(overTheWire(built));
    assert.deepEqual(again, built);
    assert.equal(JSON.stringify(again), JSON.stringify(built));
    assert.equal(planChecksum(again), planChecksum(built));
  });

  it('the example order saga, built in TypeScript, round-trips; and equals its YAML twin compiled from JSON', () => {
    assert.deepEqual(compileRecipe(overTheWire(orderSaga)), orderSaga);
    const yamlPlan = parseRecipeYaml(readFileSync(join(examples, 'order-saga.yaml'), 'utf8'));
    assert.equal(planChecksum(compileRecipe(overTheWire(yamlPlan))), planChecksum(yamlPlan));
  });

  it('the authoring form still compiles as before', () => {
    const plan = compileRecipe({
      name: 'authoring',
      steps: [{ id: 'a', capability: 'x.a', retry: { initialInterval: '2s' } }],
    });
    const [a] = plan.steps;
    assert.ok(a?.type === 'task');
    assert.equal(a.retry.initialIntervalMs, 2000);
  });

  it('a plan is validated like any recipe: a bad expression or a duplicate id is refused with its path', () => {
    const plan = overTheWire(allConstructs()) as { steps: { id: string; when?: string }[] };
    const broken = {
      ...plan,
      steps: plan.steps.map((s, i) => (i === 0 ? { ...s, when: 'input.(' } : i === 1 ? { ...s, id: 'a' } : s)),
    };
    const paths = refused(broken).issues.map((i) => i.path);
    assert.ok(paths.includes('steps[0].when'), JSON.stringify(paths));
    assert.ok(
      paths.some((p) => p.startsWith('steps[1]')),
      JSON.stringify(paths),
    );
  });

  it('a plan with a misspelt or missing key is refused in the plan form, naming the key', () => {
    const plan = overTheWire(allConstructs()) as { steps: Record<string, unknown>[] };
    const [first, ...rest] = plan.steps;
    const retry = { ...(first?.retry as Record<string, unknown>), initialIntervalMsec: 5 };
    const issues = refused({ ...plan, steps: [{ ...first, retry }, ...rest] }).issues;
    assert.deepEqual(
      issues.map((i) => `${i.path}: ${i.message}`),
      ['steps[0].retry: unknown key initialIntervalMsec'],
    );
  });
});
