import { parseContractRange, REGION } from '../protocol/shards.js';
import { z } from 'zod';
import { parseDuration } from './duration.js';
import { formatPath, RecipeInvalidError, type RecipeIssue } from './errors.js';
import type {
  ForEachStep,
  InputMapping,
  ParallelStep,
  RecipePlan,
  Retention,
  RetryPolicy,
  SleepStep,
  Step,
  SubRecipeStep,
  TaskStep,
  Timeouts,
  WaitForSignalStep,
} from './plan.js';
import { looksLikePlan, planSchema, planToAuthoring } from './plan-schema.js';
import { validatePlan } from './validate.js';

/*
 * The authoring form of a recipe (what YAML and the builder write) and its compilation
 * into the plan: defaults filled in, durations in ms, a fixed key order, so equal
 * recipes give equal JSON and checksums.
 */

const duration = z.union([z.number(), z.string()]).refine((v) => parseDuration(v) !== undefined, {
  message: 'must be a duration: milliseconds, or a number with ms, s, m, h or d (e.g. 30s)',
});
const expression = z.string({ error: 'must be an expression (a string)' }).min(1, 'must not be empty');
const input = z.union([expression, z.record(z.string(), expression)], {
  error: 'must be an expression, or an object whose values are expressions',
});
const common = {
  id: z.string({ error: 'id is required' }),
  when: expression.optional(),
  region: z.string().regex(REGION, 'must be a region: lower-case letters, digits and dashes (e.g. eu-west)').optional(),
};
const contract = z.union([z.number(), z.string()]).refine((v) => parseContractRange(v) !== undefined, {
  message: 'must be contract versions: 2 (exactly), ">=2", or "2..3"',
});
const retry = z.strictObject({
  maxAttempts: z.number().int('must be an integer').min(1, 'must be at least 1').optional(),
  initialInterval: duration.optional(),
  backoffCoefficient: z.number().min(1, 'must be at least 1').optional(),
  maxInterval: duration.optional(),
  jitter: z.number().min(0, 'must be between 0 and 1').max(1, 'must be between 0 and 1').optional(),
  nonRetryableErrorCodes: z.array(z.string().min(1)).optional(),
});
const timeouts = z.strictObject({
  scheduleToStart: duration.optional(),
  startToClose: duration.optional(),
  heartbeat: duration.optional(),
});

const taskSchema = z.strictObject({
  ...common,
  type: z.literal('task'),
  capability: z.string({ error: 'capability is required' }),
  contract: contract.optional(),
  input: input.optional(),
  output: z.string().min(1).optional(),
  retry: retry.optional(),
  timeouts: timeouts.optional(),
  compensate: z
    .strictObject({ capability: z.string({ error: 'capability is required' }), input: input.optional() })
    .optional(),
});
type TaskAuthoring = z.infer<typeof taskSchema>;

export type StepAuthoring =
  | TaskAuthoring
  | (z.infer<z.ZodObject<typeof common>> & { type: 'parallel'; branches: StepAuthoring[][] })
  | (z.infer<z.ZodObject<typeof common>> & {
      type: 'forEach';
      items: string;
      concurrency?: number;
      steps: StepAuthoring[];
      output?: string;
    })
  | (z.infer<z.ZodObject<typeof common>> & {
      type: 'subRecipe';
      recipe: string;
      version?: number;
      input?: string | Record<string, string>;
      output?: string;
    })
  | (z.infer<z.ZodObject<typeof common>> & { type: 'sleep'; duration?: number | string; until?: string })
  | (z.infer<z.ZodObject<typeof common>> & {
      type: 'waitForSignal';
      signal: string;
      timeout?: number | string;
      onTimeout?: 'fail' | 'continue';
      output?: string;
    });

/** Shorthands: `forEach: <items>`, `parallel: [[...], [...]]`, `subRecipe: <name>`, `sleep: 5s`, `sleepUntil: <expr>`, `waitForSignal: <name>`. */
const SHORTHANDS: Record<string, [type: string, key: string]> = {
  forEach: ['forEach', 'items'],
  parallel: ['parallel', 'branches'],
  subRecipe: ['subRecipe', 'recipe'],
  sleep: ['sleep', 'duration'],
  sleepUntil: ['sleep', 'until'],
  waitForSignal: ['waitForSignal', 'signal'],
};

/** `type` may be left out when a step's own key says what it is. */
function inferType(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || 'type' in value) return value;
  const record = value as Record<string, unknown>;
  const shorthand = Object.keys(SHORTHANDS).filter((k) => k in record);
  if (shorthand.length === 1) {
    const name = shorthand[0] ?? '';
    const [type, key] = SHORTHANDS[name] ?? ['', ''];
    const { [name]: shortValue, ...rest } = record;
    return { type, [key]: shortValue, ...rest };
  }
  const keys = Object.keys(value);
  const type = keys.includes('capability')
    ? 'task'
    : keys.includes('branches')
      ? 'parallel'
      : keys.includes('items')
        ? 'forEach'
        : keys.includes('recipe')
          ? 'subRecipe'
          : keys.includes('signal')
            ? 'waitForSignal'
            : keys.includes('duration') || keys.includes('until')
              ? 'sleep'
              : undefined;
  return type === undefined ? value : { type, ...value };
}

const stepSchema: z.ZodType<StepAuthoring> = z.lazy(() =>
  z.preprocess(
    inferType,
    z.discriminatedUnion(
      'type',
      [
        taskSchema,
        z.strictObject({ ...common, type: z.literal('parallel'), branches: z.array(z.array(stepSchema)) }),
        z.strictObject({
          ...common,
          type: z.literal('forEach'),
          items: expression,
          concurrency: z.number().int('must be an integer').min(1, 'must be at least 1').optional(),
          steps: z.array(stepSchema),
          output: z.string().min(1).optional(),
        }),
        z.strictObject({
          ...common,
          type: z.literal('subRecipe'),
          recipe: z.string().min(1),
          version: z.number().int().min(1).optional(),
          input: input.optional(),
          output: z.string().min(1).optional(),
        }),
        z.strictObject({
          ...common,
          type: z.literal('sleep'),
          duration: duration.optional(),
          until: expression.optional(),
        }),
        z.strictObject({
          ...common,
          type: z.literal('waitForSignal'),
          signal: z.string().min(1),
          timeout: duration.optional(),
          onTimeout: z.enum(['fail', 'continue']).optional(),
          output: z.string().min(1).optional(),
        }),
      ],
      {
        error:
          'a step needs a type (task, parallel, forEach, subRecipe, sleep, waitForSignal) or one of its keys: capability, forEach, parallel, subRecipe, sleep, sleepUntil, waitForSignal',
      },
    ),
  ),
);

/** The shortest retention a recipe may ask for: below it a reply or a timer still on its way finds nothing. */
export const MIN_RETENTION_MS = 60_000;
const RETENTION_MESSAGE = 'must be a duration of at least 1m (e.g. 30d), or forever';
const retention = z.union([z.literal('forever'), z.number(), z.string()], { error: RETENTION_MESSAGE }).refine(
  (v) => {
    if (v === 'forever') return true;
    const ms = parseDuration(v);
    return ms !== undefined && ms >= MIN_RETENTION_MS;
  },
  { message: RETENTION_MESSAGE },
);

export const recipeSchema = z.strictObject({
  name: z.string({ error: 'name is required' }),
  description: z.string().optional(),
  steps: z.array(stepSchema, { error: 'steps must be a list of steps' }),
  output: expression.optional(),
  // Handlers are parsed as any step so validatePlan can say that only tasks are allowed.
  onFailure: z.array(stepSchema, { error: 'onFailure must be a list of steps' }).optional(),
  finally: z.array(stepSchema, { error: 'finally must be a list of steps' }).optional(),
  deadline: duration.optional(),
  retention: retention.optional(),
});
export type RecipeAuthoring = z.input<typeof recipeSchema>;

const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 3,
  initialIntervalMs: 1000,
  backoffCoefficient: 2,
  maxIntervalMs: 60_000,
  jitter: 0.2,
  nonRetryableErrorCodes: [],
};

function ms(value: number | string | undefined): number | undefined {
  return value === undefined ? undefined : parseDuration(value);
}

function toRetention(value: number | string | undefined): Retention | undefined {
  if (value === undefined) return undefined;
  if (value === 'forever') return 'forever';
  return { maxAgeMs: parseDuration(value) ?? MIN_RETENTION_MS };
}

function mapping(value: string | Record<string, string> | undefined): InputMapping | undefined {
  if (value === undefined) return undefined;
  return typeof value === 'string' ? { expression: value } : { fields: { ...value } };
}

/** Builds an object with keys in the given order, leaving out undefined values. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- T names the plan type being built.
function ordered<T>(entries: [string, unknown][]): T {
  return Object.fromEntries(entries.filter(([, v]) => v !== undefined)) as T;
}

function base(step: { id: string; when?: string | undefined; region?: string | undefined }): [string, unknown][] {
  return [
    ['id', step.id],
    ['when', step.when],
    ['region', step.region],
  ];
}

function toTask(step: TaskAuthoring): TaskStep {
  const r = step.retry ?? {};
  const t = step.timeouts ?? {};
  return ordered<TaskStep>([
    ...base(step),
    ['type', 'task'],
    ['capability', step.capability],
    ['contract', step.contract === undefined ? undefined : parseContractRange(step.contract)],
    ['input', mapping(step.input)],
    ['output', step.output ?? step.id],
    [
      'retry',
      {
        maxAttempts: r.maxAttempts ?? DEFAULT_RETRY.maxAttempts,
        initialIntervalMs: ms(r.initialInterval) ?? DEFAULT_RETRY.initialIntervalMs,
        backoffCoefficient: r.backoffCoefficient ?? DEFAULT_RETRY.backoffCoefficient,
        maxIntervalMs: ms(r.maxInterval) ?? DEFAULT_RETRY.maxIntervalMs,
        jitter: r.jitter ?? DEFAULT_RETRY.jitter,
        nonRetryableErrorCodes: [...(r.nonRetryableErrorCodes ?? [])],
      },
    ],
    [
      'timeouts',
      ordered<Timeouts>([
        ['scheduleToStartMs', ms(t.scheduleToStart)],
        ['startToCloseMs', ms(t.startToClose)],
        ['heartbeatMs', ms(t.heartbeat)],
      ]),
    ],
    [
      'compensate',
      step.compensate === undefined
        ? undefined
        : ordered([
            ['capability', step.compensate.capability],
            ['input', mapping(step.compensate.input)],
          ]),
    ],
  ]);
}

function toStep(step: StepAuthoring): Step {
  switch (step.type) {
    case 'task':
      return toTask(step);
    case 'parallel':
      return ordered<ParallelStep>([
        ...base(step),
        ['type', 'parallel'],
        ['branches', step.branches.map((b) => b.map(toStep))],
      ]);
    case 'forEach':
      return ordered<ForEachStep>([
        ...base(step),
        ['type', 'forEach'],
        ['items', step.items],
        ['concurrency', step.concurrency ?? 10],
        // Non-task bodies are reported by validatePlan; kept as they are meanwhile.
        ['steps', step.steps.map(toStep)],
        ['output', step.output ?? step.id],
      ]);
    case 'subRecipe':
      return ordered<SubRecipeStep>([
        ...base(step),
        ['type', 'subRecipe'],
        ['recipe', step.recipe],
        ['version', step.version],
        ['input', mapping(step.input)],
        ['output', step.output ?? step.id],
      ]);
    case 'sleep':
      return ordered<SleepStep>([
        ...base(step),
        ['type', 'sleep'],
        ['durationMs', ms(step.duration)],
        ['until', step.until],
      ]);
    case 'waitForSignal':
      return ordered<WaitForSignalStep>([
        ...base(step),
        ['type', 'waitForSignal'],
        ['signal', step.signal],
        ['timeoutMs', ms(step.timeout)],
        ['onTimeout', step.onTimeout ?? 'fail'],
        ['output', step.output ?? step.id],
      ]);
  }
}

function invalid(error: z.ZodError): RecipeInvalidError {
  const issues: RecipeIssue[] = error.issues.map((i) => ({
    path: formatPath(i.path),
    message:
      i.code === 'unrecognized_keys' ? `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}` : i.message,
  }));
  return new RecipeInvalidError(issues, { cause: error });
}

/**
 * Validates a recipe and compiles it into the plan. Takes the authoring form (what YAML
 * and the builder's methods write) or a plan itself (what `recipe(...).build()` returns
 * and `JSON.stringify` serialises): a plan is turned back into the authoring form and
 * compiled again, so it is validated alike and yields the same plan. A document that is
 * a complete plan is read as one. Throws RecipeInvalidError listing every problem with
 * its path (in the plan form when the document uses keys only a plan has, such as
 * `initialIntervalMs`).
 */
export function compileRecipe(value: unknown): RecipePlan {
  const asPlan = planSchema.safeParse(value);
  if (asPlan.success) return compileAuthoring(planToAuthoring(asPlan.data));
  if (looksLikePlan(value)) throw invalid(asPlan.error);
  return compileAuthoring(value);
}

function compileAuthoring(value: unknown): RecipePlan {
  const parsed = recipeSchema.safeParse(value);
  if (!parsed.success) throw invalid(parsed.error);
  const r = parsed.data;
  const plan = ordered<RecipePlan>([
    ['name', r.name],
    ['description', r.description],
    ['steps', r.steps.map(toStep)],
    ['onFailure', r.onFailure?.map(toStep)],
    ['finally', r.finally?.map(toStep)],
    ['output', r.output],
    ['deadlineMs', ms(r.deadline)],
    ['retention', toRetention(r.retention)],
  ]);
  const issues = validatePlan(plan);
  if (issues.length > 0) throw new RecipeInvalidError(issues);
  return plan;
}
