import type { Duration } from './duration.js';
import type { RecipePlan } from './plan.js';
import { compileRecipe, type StepAuthoring } from './schema.js';

/** A step input: one JSONata expression, or an object whose values are expressions. */
export type InputSpec = string | Record<string, string>;

export interface TaskOptions {
  /** How the input is built. @default none: the input is `{}` */
  readonly input?: InputSpec;
  /** Name of the output for later expressions. @default the step id */
  readonly output?: string;
  /** Run only when this expression is truthy. */
  readonly when?: string;
  /** Region whose workers must run it. */
  readonly region?: string;
  /** Contract versions of the capability it accepts: 2 (exactly), '>=2' or '2..3'. @default any */
  readonly contract?: number | string;
  /** @default { maxAttempts: 3, initialInterval: '1s', backoffCoefficient: 2, maxInterval: '1m', jitter: 0.2, nonRetryableErrorCodes: [] } */
  readonly retry?: {
    readonly maxAttempts?: number;
    readonly initialInterval?: Duration;
    readonly backoffCoefficient?: number;
    readonly maxInterval?: Duration;
    readonly jitter?: number;
    readonly nonRetryableErrorCodes?: readonly string[];
  };
  /** @default no timeouts */
  readonly timeouts?: {
    readonly scheduleToStart?: Duration;
    readonly startToClose?: Duration;
    readonly heartbeat?: Duration;
  };
  /** Undoes this step when a later step fails the saga. */
  readonly compensate?: { readonly capability: string; readonly input?: InputSpec };
}

/** Collects the steps of a sequence (the recipe, a parallel branch, a forEach body). */
export class StepsBuilder {
  protected readonly steps: StepAuthoring[] = [];

  /** A step run by the workers of `capability` (e.g. `payments.charge`). */
  task(id: string, capability: string, options: TaskOptions = {}): this {
    const { retry, compensate, ...rest } = options;
    let retryAuthoring: Extract<StepAuthoring, { type: 'task' }>['retry'];
    if (retry !== undefined) {
      const { nonRetryableErrorCodes: codes, ...policy } = retry;
      retryAuthoring = { ...policy, ...(codes === undefined ? {} : { nonRetryableErrorCodes: [...codes] }) };
    }
    this.steps.push({
      id,
      type: 'task',
      capability,
      ...rest,
      ...(retryAuthoring === undefined ? {} : { retry: retryAuthoring }),
      ...(compensate === undefined ? {} : { compensate: { ...compensate } }),
    });
    return this;
  }

  /** Branches run at once; the step completes when every branch has. */
  parallel(
    id: string,
    branches: readonly ((branch: StepsBuilder) => StepsBuilder)[],
    options: { when?: string } = {},
  ): this {
    this.steps.push({ id, type: 'parallel', ...options, branches: branches.map((b) => b(new StepsBuilder()).list()) });
    return this;
  }

  /** Runs `body` for each item of `items`. @default concurrency 10 */
  forEach(
    id: string,
    options: { items: string; concurrency?: number; output?: string; when?: string },
    body: (steps: StepsBuilder) => StepsBuilder,
  ): this {
    this.steps.push({ id, type: 'forEach', ...options, steps: body(new StepsBuilder()).list() });
    return this;
  }

  /** Runs another recipe as one step. @default its latest version */
  subRecipe(
    id: string,
    recipe: string,
    options: { version?: number; input?: InputSpec; output?: string; when?: string } = {},
  ): this {
    this.steps.push({ id, type: 'subRecipe', recipe, ...options });
    return this;
  }

  /** Waits durably for a duration, or until the instant an expression gives. */
  sleep(id: string, options: { duration: Duration; when?: string } | { until: string; when?: string }): this {
    this.steps.push({ id, type: 'sleep', ...options });
    return this;
  }

  /** Waits for a named signal; its payload is the output. @default onTimeout 'fail' */
  waitForSignal(
    id: string,
    options: { signal: string; timeout?: Duration; onTimeout?: 'fail' | 'continue'; output?: string; when?: string },
  ): this {
    this.steps.push({ id, type: 'waitForSignal', ...options });
    return this;
  }

  /** The steps so far, in authoring form. */
  list(): StepAuthoring[] {
    return [...this.steps];
  }
}

export class RecipeBuilder extends StepsBuilder {
  #description: string | undefined;
  #output: string | undefined;
  #retention: Duration | 'forever' | undefined;
  #deadline: Duration | undefined;
  #onFailure: StepAuthoring[] | undefined;
  #finally: StepAuthoring[] | undefined;
  constructor(readonly name: string) {
    super();
  }

  describe(description: string): this {
    this.#description = description;
    return this;
  }

  /** The execution's output. @default every output, by name */
  output(expression: string): this {
    this.#output = expression;
    return this;
  }

  /**
   * How long finished executions are kept before the control plane purges them (at
   * least 1m), or `'forever'`. The latest registered version decides for all versions.
   * @default the control plane's retention (SOUS_RETENTION, 30d)
   */
  retention(retention: Duration | 'forever'): this {
    this.#retention = retention;
    return this;
  }

  /**
   * Task steps run after a failed or timed-out execution, once its compensations ran;
   * their expressions see `failure` (code, message, details). Their own failure is
   * recorded without hiding the execution's.
   */
  onFailure(steps: (steps: StepsBuilder) => StepsBuilder): this {
    this.#onFailure = steps(new StepsBuilder()).list();
    return this;
  }

  /** Task steps run after every finished execution (completed, failed, timed out), after `onFailure`. */
  finally(steps: (steps: StepsBuilder) => StepsBuilder): this {
    this.#finally = steps(new StepsBuilder()).list();
    return this;
  }

  /**
   * Longest an execution may run: then its steps in flight are cancelled, its
   * compensations run and it ends `timed_out`. A start may give its own. @default none
   */
  deadline(deadline: Duration): this {
    this.#deadline = deadline;
    return this;
  }

  /** Validates and compiles, exactly as a YAML recipe is: throws RecipeInvalidError. */
  build(): RecipePlan {
    return compileRecipe({
      name: this.name,
      ...(this.#description === undefined ? {} : { description: this.#description }),
      steps: this.list(),
      ...(this.#onFailure === undefined ? {} : { onFailure: this.#onFailure }),
      ...(this.#finally === undefined ? {} : { finally: this.#finally }),
      ...(this.#output === undefined ? {} : { output: this.#output }),
      ...(this.#deadline === undefined ? {} : { deadline: this.#deadline }),
      ...(this.#retention === undefined ? {} : { retention: this.#retention }),
    });
  }
}

/** Starts a recipe built in TypeScript. */
export function recipe(name: string): RecipeBuilder {
  return new RecipeBuilder(name);
}
