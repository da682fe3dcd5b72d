import { compileExpression } from './expressions.js';
import type { RecipeIssue } from './errors.js';
import type { InputMapping, RecipePlan, Step } from './plan.js';

const RECIPE_NAME = /^[a-z][a-z0-9._-]*$/;
const STEP_ID = /^[A-Za-z][A-Za-z0-9_-]*$/;
const CAPABILITY = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$/;

/** Names read as `outputs.<name>` anywhere in a parsed JSONata expression. */
export function outputsRead(node: unknown, into: Set<string> = new Set()): Set<string> {
  if (Array.isArray(node)) {
    for (const item of node) outputsRead(item, into);
  } else if (typeof node === 'object' && node !== null) {
    const { type, steps } = node as { type?: unknown; steps?: unknown };
    if (type === 'path' && Array.isArray(steps)) {
      const [first, second] = steps as { type?: unknown; value?: unknown }[];
      if (first?.type === 'name' && first.value === 'outputs' && second?.type === 'name') {
        into.add(String(second.value));
      }
    }
    for (const value of Object.values(node)) outputsRead(value, into);
  }
  return into;
}

/** Each output name with where it is declared and its step's place in document order. */
function declaredOutputs(plan: RecipePlan): Map<string, { at: string; order: number }> {
  const declared = new Map<string, { at: string; order: number }>();
  let order = 0;
  const visit = (steps: readonly Step[], path: string) => {
    steps.forEach((step, i) => {
      const at = `${path}[${i}]`;
      if ('output' in step && !declared.has(step.output)) declared.set(step.output, { at, order });
      order++;
      if (step.type === 'parallel') step.branches.forEach((branch, b) => visit(branch, `${at}.branches[${b}]`));
      if (step.type === 'forEach') visit(step.steps, `${at}.steps`);
    });
  };
  visit(plan.steps, 'steps');
  // Handlers run after every step: they come last in document order.
  visit(plan.onFailure ?? [], 'onFailure');
  visit(plan.finally ?? [], 'finally');
  return declared;
}

/** Checks what the schema cannot: names, uniqueness, shapes, and that expressions parse. */
export function validatePlan(plan: RecipePlan): RecipeIssue[] {
  const issues: RecipeIssue[] = [];
  const add = (path: string, message: string) => issues.push({ path, message });
  const ids = new Map<string, string>();
  const outputs = new Map<string, string>();
  const declared = declaredOutputs(plan);
  /** Place in document order of the step whose own expressions are being checked. */
  let current = -1;
  let order = 0;

  const expr = (path: string, source: string | undefined, readsOutputs = true) => {
    if (source === undefined) return;
    try {
      const compiled = compileExpression(source);
      if (readsOutputs) {
        for (const name of outputsRead(compiled.ast())) {
          const later = declared.get(name);
          if (later !== undefined && later.order >= current) {
            add(
              path,
              later.order === current
                ? `outputs.${name} is this step's own output: it is not there yet when the expression runs`
                : `outputs.${name} is the output of a later step (${later.at}): it is not there yet when the expression runs`,
            );
          }
        }
      }
    } catch (error) {
      add(
        path,
        error instanceof Error
          ? error.message.replace(/^expression .* does not parse: /, 'expression does not parse: ')
          : String(error),
      );
    }
  };
  const inputs = (path: string, mapping: InputMapping | undefined, readsOutputs = true) => {
    if (mapping === undefined) return;
    if ('expression' in mapping) expr(path, mapping.expression, readsOutputs);
    else for (const [name, source] of Object.entries(mapping.fields)) expr(`${path}.${name}`, source, readsOutputs);
  };
  const capability = (path: string, name: string) => {
    if (!CAPABILITY.test(name))
      add(path, `capability ${JSON.stringify(name)} must look like domain.action (e.g. payments.charge)`);
  };

  const visit = (steps: readonly Step[], path: string) => {
    steps.forEach((step, i) => {
      const at = `${path}[${i}]`;
      current = order++;
      if (!STEP_ID.test(step.id))
        add(
          `${at}.id`,
          `id ${JSON.stringify(step.id)} must start with a letter and hold only letters, digits, _ and -`,
        );
      const seen = ids.get(step.id);
      if (seen !== undefined) add(`${at}.id`, `id ${step.id} is already used at ${seen}`);
      else ids.set(step.id, at);
      if ('output' in step) {
        const other = outputs.get(step.output);
        if (other !== undefined) add(`${at}.output`, `output name ${step.output} is already used at ${other}`);
        else outputs.set(step.output, at);
      }
      expr(`${at}.when`, step.when);
      switch (step.type) {
        case 'task':
          capability(`${at}.capability`, step.capability);
          inputs(`${at}.input`, step.input);
          if (step.retry.initialIntervalMs <= 0) add(`${at}.retry.initialInterval`, 'must be more than 0');
          if (step.retry.initialIntervalMs > step.retry.maxIntervalMs)
            add(`${at}.retry.maxInterval`, 'must not be less than initialInterval');
          if (step.compensate !== undefined) {
            capability(`${at}.compensate.capability`, step.compensate.capability);
            // Compensation runs after its step (and maybe later ones) completed.
            inputs(`${at}.compensate.input`, step.compensate.input, false);
          }
          break;
        case 'parallel':
          if (step.branches.length < 2) add(`${at}.branches`, 'a parallel step needs at least 2 branches');
          step.branches.forEach((branch, b) => {
            if (branch.length === 0) add(`${at}.branches[${b}]`, 'a branch needs at least one step');
            visit(branch, `${at}.branches[${b}]`);
          });
          break;
        case 'forEach':
          expr(`${at}.items`, step.items);
          if (step.steps.length === 0) add(`${at}.steps`, 'a forEach needs at least one step');
          step.steps.forEach((body, b) => {
            if ((body as Step).type !== 'task') add(`${at}.steps[${b}]`, 'a forEach body may hold only task steps');
          });
          visit(step.steps, `${at}.steps`);
          break;
        case 'subRecipe':
          if (!RECIPE_NAME.test(step.recipe))
            add(`${at}.recipe`, `recipe name ${JSON.stringify(step.recipe)} must be lower-case: a-z, 0-9, ., _ and -`);
          inputs(`${at}.input`, step.input);
          break;
        case 'sleep':
          if ((step.durationMs === undefined) === (step.until === undefined))
            add(at, 'a sleep needs exactly one of duration and until');
          expr(`${at}.until`, step.until);
          break;
        case 'waitForSignal':
          break;
      }
    });
  };

  if (!RECIPE_NAME.test(plan.name))
    add('name', `recipe name ${JSON.stringify(plan.name)} must be lower-case: a-z, 0-9, ., _ and -`);
  if (plan.steps.length === 0) add('steps', 'a recipe needs at least one step');
  visit(plan.steps, 'steps');
  for (const name of ['onFailure', 'finally'] as const) {
    const handlers = plan[name] ?? [];
    handlers.forEach((step, i) => {
      if ((step as Step).type !== 'task')
        add(`${name}[${i}]`, `${name} may hold only task steps (they run once the execution is over)`);
      else if (step.compensate !== undefined)
        add(`${name}[${i}].compensate`, `a ${name} step has nothing to compensate: it runs after the compensations`);
    });
    visit(handlers, name);
  }
  if (plan.deadlineMs !== undefined && plan.deadlineMs <= 0) add('deadline', 'must be more than 0');
  expr('output', plan.output, false);
  return issues;
}
