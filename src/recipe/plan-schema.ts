import { formatContractRange } from '../protocol/shards.js';
import { z } from 'zod';
import type { InputMapping, RecipePlan, Step, TaskStep } from './plan.js';
import type { RecipeAuthoring, StepAuthoring } from './schema.js';

/*
 * The plan (src/recipe/plan.ts) as JSON input: what `recipe(...).build()` returns and
 * what the control plane stores. A plan given where a recipe is expected (GraphQL
 * `registerRecipe(json:)`, compileRecipe) is turned back into the authoring form and
 * compiled like any recipe, so it is validated the same way and yields the same plan,
 * byte for byte, with the same checksum.
 */

const mapping: z.ZodType<InputMapping> = z.union([
  z.strictObject({ expression: z.string() }),
  z.strictObject({ fields: z.record(z.string(), z.string()) }),
]);
const base = { id: z.string(), when: z.string().optional(), region: z.string().optional() };

const taskPlan = z.strictObject({
  ...base,
  type: z.literal('task'),
  capability: z.string(),
  contract: z.strictObject({ min: z.number(), max: z.number().optional() }).optional(),
  input: mapping.optional(),
  output: z.string(),
  retry: z.strictObject({
    maxAttempts: z.number(),
    initialIntervalMs: z.number(),
    backoffCoefficient: z.number(),
    maxIntervalMs: z.number(),
    jitter: z.number(),
    nonRetryableErrorCodes: z.array(z.string()),
  }),
  timeouts: z.strictObject({
    scheduleToStartMs: z.number().optional(),
    startToCloseMs: z.number().optional(),
    heartbeatMs: z.number().optional(),
  }),
  compensate: z.strictObject({ capability: z.string(), input: mapping.optional() }).optional(),
});

const stepPlan: z.ZodType<Step> = z.lazy(() =>
  z.discriminatedUnion('type', [
    taskPlan,
    z.strictObject({ ...base, type: z.literal('parallel'), branches: z.array(z.array(stepPlan)) }),
    z.strictObject({
      ...base,
      type: z.literal('forEach'),
      items: z.string(),
      concurrency: z.number(),
      // Only tasks are valid here; other steps are parsed so validatePlan can say so.
      steps: z.array(stepPlan),
      output: z.string(),
    }),
    z.strictObject({
      ...base,
      type: z.literal('subRecipe'),
      recipe: z.string(),
      version: z.number().optional(),
      input: mapping.optional(),
      output: z.string(),
    }),
    z.strictObject({
      ...base,
      type: z.literal('sleep'),
      durationMs: z.number().optional(),
      until: z.string().optional(),
    }),
    z.strictObject({
      ...base,
      type: z.literal('waitForSignal'),
      signal: z.string(),
      timeoutMs: z.number().optional(),
      onTimeout: z.enum(['fail', 'continue']),
      output: z.string(),
    }),
  ]),
) as z.ZodType<Step>;

// Only tasks are valid as handlers; other steps are parsed so validatePlan can say so.
const handlersPlan = z.array(stepPlan) as z.ZodType as z.ZodType<TaskStep[]>;

/** Every key of the plan form, at any depth. */
export const planSchema: z.ZodType<RecipePlan> = z.strictObject({
  name: z.string(),
  description: z.string().optional(),
  steps: z.array(stepPlan),
  onFailure: handlersPlan.optional(),
  finally: handlersPlan.optional(),
  output: z.string().optional(),
  deadlineMs: z.number().optional(),
  retention: z.union([z.literal('forever'), z.strictObject({ maxAgeMs: z.number() })]).optional(),
});

/** Keys only the plan form has: a document holding one was meant as a plan. */
const PLAN_ONLY_KEYS = new Set([
  'initialIntervalMs',
  'maxIntervalMs',
  'scheduleToStartMs',
  'startToCloseMs',
  'heartbeatMs',
  'durationMs',
  'timeoutMs',
  'maxAgeMs',
  'deadlineMs',
]);

/** Whether a JSON document uses keys only the plan form has (to report the plan's issues). */
export function looksLikePlan(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(looksLikePlan);
  if (typeof value !== 'object' || value === null) return false;
  return Object.entries(value).some(([key, item]) => PLAN_ONLY_KEYS.has(key) || looksLikePlan(item));
}

function fromMapping(input: InputMapping | undefined): string | Record<string, string> | undefined {
  if (input === undefined) return undefined;
  return 'expression' in input ? input.expression : { ...input.fields };
}

/** Leaves out undefined values, so strict authoring schemas see only given keys. */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function toAuthoringStep(step: Step): StepAuthoring {
  const common = { id: step.id, when: step.when, region: step.region };
  switch (step.type) {
    case 'task':
      return defined({
        ...common,
        type: 'task' as const,
        capability: step.capability,
        contract: step.contract === undefined ? undefined : formatContractRange(step.contract),
        input: fromMapping(step.input),
        output: step.output,
        retry: {
          maxAttempts: step.retry.maxAttempts,
          initialInterval: step.retry.initialIntervalMs,
          backoffCoefficient: step.retry.backoffCoefficient,
          maxInterval: step.retry.maxIntervalMs,
          jitter: step.retry.jitter,
          nonRetryableErrorCodes: [...step.retry.nonRetryableErrorCodes],
        },
        timeouts: defined({
          scheduleToStart: step.timeouts.scheduleToStartMs,
          startToClose: step.timeouts.startToCloseMs,
          heartbeat: step.timeouts.heartbeatMs,
        }),
        compensate:
          step.compensate === undefined
            ? undefined
            : defined({ capability: step.compensate.capability, input: fromMapping(step.compensate.input) }),
      });
    case 'parallel':
      return defined({
        ...common,
        type: 'parallel' as const,
        branches: step.branches.map((b) => b.map(toAuthoringStep)),
      });
    case 'forEach':
      return defined({
        ...common,
        type: 'forEach' as const,
        items: step.items,
        concurrency: step.concurrency,
        steps: step.steps.map(toAuthoringStep),
        output: step.output,
      });
    case 'subRecipe':
      return defined({
        ...common,
        type: 'subRecipe' as const,
        recipe: step.recipe,
        version: step.version,
        input: fromMapping(step.input),
        output: step.output,
      });
    case 'sleep':
      return defined({ ...common, type: 'sleep' as const, duration: step.durationMs, until: step.until });
    case 'waitForSignal':
      return defined({
        ...common,
        type: 'waitForSignal' as const,
        signal: step.signal,
        timeout: step.timeoutMs,
        onTimeout: step.onTimeout,
        output: step.output,
      });
  }
}

/** The authoring form that compiles to `plan` (durations as milliseconds). */
export function planToAuthoring(plan: RecipePlan): RecipeAuthoring {
  return defined({
    name: plan.name,
    description: plan.description,
    steps: plan.steps.map(toAuthoringStep),
    onFailure: plan.onFailure?.map(toAuthoringStep),
    finally: plan.finally?.map(toAuthoringStep),
    output: plan.output,
    deadline: plan.deadlineMs,
    retention: plan.retention === undefined || plan.retention === 'forever' ? plan.retention : plan.retention.maxAgeMs,
  });
}
