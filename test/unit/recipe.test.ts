import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { orderSaga } from '../../examples/recipes/order-saga.js';
import {
  compileRecipe,
  evaluate,
  evaluateCondition,
  evaluateInput,
  ExpressionError,
  parseDuration,
  parseRecipeYaml,
  planChecksum,
  recipe,
  RecipeInvalidError,
  type ExpressionScope,
  type RecipeIssue,
} from '../../src/recipe/index.js';

const examples = join(import.meta.dirname, '..', '..', 'examples', 'recipes');
const readExample = (file: string) => readFileSync(join(examples, file), 'utf8');

function issuesOf(fn: () => unknown): readonly RecipeIssue[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof RecipeInvalidError, `expected RecipeInvalidError, got ${String(error)}`);
    assert.equal(error.code, 'SOUS_RECIPE_INVALID');
    return error.issues;
  }
  assert.fail('the recipe was accepted');
}

describe('recipes: YAML and builder', () => {
  it('give the same plan and checksum for the order saga', () => {
    const fromYaml = parseRecipeYaml(readExample('order-saga.yaml'));
    assert.deepEqual(fromYaml, orderSaga);
    assert.equal(planChecksum(fromYaml), planChecksum(orderSaga));
    assert.equal(JSON.stringify(fromYaml), JSON.stringify(orderSaga), 'same key order too');
  });

  it('fill in every default and convert durations', () => {
    const plan = parseRecipeYaml(readExample('order-saga.yaml'));
    const [reserve, charge] = plan.steps;
    assert.deepEqual(reserve, {
      id: 'reserve',
      type: 'task',
      capability: 'inventory.reserve',
      input: { fields: { sku: 'input.sku', quantity: 'input.quantity' } },
      output: 'reserve',
      retry: {
        maxAttempts: 3,
        initialIntervalMs: 1000,
        backoffCoefficient: 2,
        maxIntervalMs: 60000,
        jitter: 0.2,
        nonRetryableErrorCodes: [],
      },
      timeouts: { startToCloseMs: 30000 },
      compensate: {
        capability: 'inventory.release',
        input: { fields: { reservationId: 'outputs.reserve.reservationId' } },
      },
    });
    assert.ok(charge?.type === 'task');
    assert.deepEqual(charge.retry, {
      maxAttempts: 4,
      initialIntervalMs: 200,
      backoffCoefficient: 2,
      maxIntervalMs: 2000,
      jitter: 0.2,
      nonRetryableErrorCodes: ['card_declined'],
    });
  });

  it('compile every construct, inferring step types from their keys', () => {
    const plan = parseRecipeYaml(readExample('data-migration.yaml'));
    assert.deepEqual(
      plan.steps.map((s) => s.type),
      ['task', 'task', 'forEach', 'task'],
    );
    const built = recipe('all-constructs')
      .task('a', 'x.a', { region: 'eu-west' })
      .parallel('p', [(b) => b.task('b1', 'x.b1'), (b) => b.task('b2', 'x.b2').task('b3', 'x.b3')])
      .forEach('each', { items: 'input.items' }, (b) => b.task('item', 'x.item'))
      .subRecipe('child', 'other-recipe', { version: 2, input: 'input' })
      .sleep('nap', { duration: '1h' })
      .sleep('until', { until: 'input.at' })
      .waitForSignal('approval', { signal: 'approved', timeout: '2d', onTimeout: 'continue' })
      .build();
    assert.deepEqual(
      built.steps.map((s) => s.type),
      ['task', 'parallel', 'forEach', 'subRecipe', 'sleep', 'sleep', 'waitForSignal'],
    );
    const [, , each, child, nap, , approval] = built.steps;
    assert.ok(each?.type === 'forEach' && each.concurrency === 10 && each.output === 'each');
    assert.deepEqual(child, {
      id: 'child',
      type: 'subRecipe',
      recipe: 'other-recipe',
      version: 2,
      input: { expression: 'input' },
      output: 'child',
    });
    assert.deepEqual(nap, { id: 'nap', type: 'sleep', durationMs: 3_600_000 });
    assert.deepEqual(approval, {
      id: 'approval',
      type: 'waitForSignal',
      signal: 'approved',
      timeoutMs: 172_800_000,
      onTimeout: 'continue',
      output: 'approval',
    });
  });
});

describe('recipes: validation', () => {
  it('lists every problem with its path', () => {
    const issues = issuesOf(() =>
      compileRecipe({
        name: 'Bad Name',
        steps: [
          { id: 'a', capability: 'nodot', retry: { maxAttempts: 0, jitter: 2 } },
          { id: 'a', capability: 'x.b', timeouts: { startToClose: 'soon' } },
          { id: 'p', type: 'parallel', branches: [[{ id: 'only', capability: 'x.c', surprise: 1 }]] },
        ],
      }),
    );
    assert.deepEqual(issues, [
      { path: 'steps[0].retry.maxAttempts', message: 'must be at least 1' },
      { path: 'steps[0].retry.jitter', message: 'must be between 0 and 1' },
      {
        path: 'steps[1].timeouts.startToClose',
        message: 'must be a duration: milliseconds, or a number with ms, s, m, h or d (e.g. 30s)',
      },
      { path: 'steps[2].branches[0][0]', message: 'unknown key surprise' },
    ]);
    const semantic = issuesOf(() =>
      compileRecipe({
        name: 'Bad Name',
        steps: [
          { id: 'a', capability: 'nodot' },
          { id: 'a', capability: 'x.b', when: 'input.(' },
          { id: 'p', type: 'parallel', branches: [[{ id: 'only', capability: 'x.c' }]] },
          { id: 'e', forEach: 'input.items', steps: [{ id: 'nap', duration: '1s' }] },
          { id: 's', type: 'sleep' },
        ],
      }),
    );
    assert.deepEqual(
      semantic.map((i) => i.path),
      [
        'name',
        'steps[0].capability',
        'steps[1].id',
        'steps[1].output',
        'steps[1].when',
        'steps[2].branches',
        'steps[3].steps[0]',
        'steps[4]',
      ],
    );
    assert.match(semantic[2]?.message ?? '', /id a is already used at steps\[0\]/);
    assert.match(semantic[4]?.message ?? '', /expression does not parse/);
  });

  it('reports a step of no known kind, and YAML errors with line numbers', () => {
    assert.deepEqual(
      issuesOf(() => compileRecipe({ name: 'r', steps: [{ id: 'mystery' }] })).map((i) => i.path),
      ['steps[0].type'],
    );
    const syntax = issuesOf(() => parseRecipeYaml('name: r\nsteps:\n  - id: a\n    capability: [unclosed\n'));
    assert.match(syntax[0]?.message ?? '', /^YAML line \d+:\d+/);
    const duplicate = issuesOf(() => parseRecipeYaml('name: r\nname: s\nsteps: []\n'));
    assert.match(duplicate[0]?.message ?? '', /line 2/);
    const located = issuesOf(() =>
      parseRecipeYaml('name: r\nsteps:\n  - id: a\n    capability: x.a\n    retry:\n      maxAttempts: 0\n'),
    );
    assert.deepEqual(located, [{ path: 'steps[0].retry.maxAttempts', message: 'must be at least 1 (line 6)' }]);
    assert.deepEqual(
      issuesOf(() => parseRecipeYaml('- just\n- a list\n')),
      [{ path: '', message: 'a recipe file must be a YAML mapping (name, steps, ...)' }],
    );
  });

  it('parses durations and rejects what is not one', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration(250), 250);
    assert.equal(parseDuration('5 minutes'), undefined);
    assert.equal(parseDuration(-1), undefined);
  });
});

describe('recipes: expressions', () => {
  const scope: ExpressionScope = {
    input: { qty: 3, items: ['a', 'b'] },
    outputs: { reserve: { price: 4 } },
    item: 'b',
    index: 1,
    execution: { id: 'e1', recipe: 'r', version: 1 },
  };

  it('evaluate JSONata against input, outputs, item and index', async () => {
    assert.equal(await evaluate('input.qty * outputs.reserve.price', scope), 12);
    assert.deepEqual(await evaluateInput({ fields: { item: 'item', i: 'index', id: 'execution.id' } }, scope), {
      item: 'b',
      i: 1,
      id: 'e1',
    });
    assert.deepEqual(await evaluateInput({ expression: '{ "n": $count(input.items) }' }, scope), { n: 2 });
    // A field that evaluates to nothing is left out: the command stays valid JSON.
    const sparse = await evaluateInput({ fields: { qty: 'input.qty', missing: 'input.nothing' } }, scope);
    assert.deepEqual(sparse, { qty: 3 });
    assert.equal(Object.hasOwn(sparse as object, 'missing'), false);
    assert.deepEqual(await evaluateInput(undefined, scope), {});
    assert.equal(await evaluateCondition('input.qty > 2', scope), true);
    assert.equal(await evaluateCondition('input.missing', scope), false);
  });

  it('fail with ExpressionError naming the expression', async () => {
    await assert.rejects(
      evaluate("$error('nope')", scope),
      (e: unknown) =>
        e instanceof ExpressionError && e.message.includes("$error('nope')") && / failed: nope$/.test(e.message),
    );
    await assert.rejects(evaluate('input.(', scope), ExpressionError);
  });
});
