// What the chaos run asks of the engine: one recipe per construct (a sequence, a forEach, a
// parallel with a join, a saga that fails and compensates, a durable timer, a signal wait),
// each step one side effect through the same capability, and what each must end as. Pure:
// the run and its invariants read it; nothing here touches the stack.
import type { RecipePlan } from '../src/recipe/plan.js';
import { recipe } from '../src/recipe/builder.js';
import type { ExecutionStatus } from '../src/engine/state.js';

export const WORKLOAD_KINDS = ['sequence', 'forEach', 'parallel', 'saga', 'timer', 'signal'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

/** The signal the `signal` recipe waits for; the run sends it right after the start. */
export const CHAOS_SIGNAL = 'go';

export interface WorkloadRecipe {
  readonly kind: WorkloadKind;
  readonly plan: RecipePlan;
  /** The input of the `index`-th execution of this kind. */
  readonly input: (index: number) => Record<string, unknown>;
  /** Side effects one execution applies (compensations included), each exactly once. */
  readonly effects: number;
  /** How an execution of this kind ends when nothing is lost. */
  readonly status: ExecutionStatus;
}

// Every attempt may meet a broker restart or a PostgreSQL crash: retry long enough to outlast one.
const retry = { maxAttempts: 30, initialInterval: '500ms', maxInterval: '5s' } as const;
const timeouts = { startToClose: '60s' } as const;

/**
 * The recipes of one chaos run. `capability` applies one effect per call and returns
 * `{ n: n + 1 }`; with `fail: true` it fails for good without an effect (the saga's trigger).
 */
export function chaosWorkload(run: string, capability: string, items: number): readonly WorkloadRecipe[] {
  const task = { retry, timeouts };
  const name = (kind: WorkloadKind) => `chaos.${run}.${kind.toLowerCase()}`;
  const step = (n: string) => ({ ...task, input: { n } });
  return [
    {
      kind: 'sequence',
      plan: recipe(name('sequence'))
        .task('s1', capability, step('input.n'))
        .task('s2', capability, step('outputs.s1.n'))
        .task('s3', capability, step('outputs.s2.n'))
        .build(),
      input: (i) => ({ n: i }),
      effects: 3,
      status: 'completed',
    },
    {
      kind: 'forEach',
      plan: recipe(name('forEach'))
        .forEach('each', { items: 'input.items', concurrency: 10 }, (body) =>
          body.task('item', capability, step('item')),
        )
        .task('after', capability, step('$count(outputs.each)'))
        .build(),
      input: () => ({ items: Array.from({ length: items }, (_, k) => k) }),
      effects: items + 1,
      status: 'completed',
    },
    {
      kind: 'parallel',
      plan: recipe(name('parallel'))
        .parallel('fan', [
          (b) => b.task('a', capability, step('input.n')),
          (b) => b.task('b', capability, step('input.n')),
          (b) => b.task('c', capability, step('input.n')),
        ])
        .task('join', capability, step('outputs.a.n + outputs.b.n + outputs.c.n'))
        .build(),
      input: (i) => ({ n: i }),
      effects: 4,
      status: 'completed',
    },
    {
      kind: 'saga',
      // reserve and charge apply their effects, ship fails for good: both compensations run
      // (latest first), each one more effect, and the execution ends failed.
      plan: recipe(name('saga'))
        .task('reserve', capability, {
          ...step('input.n'),
          compensate: { capability, input: { n: 'outputs.reserve.n' } },
        })
        .task('charge', capability, {
          ...step('outputs.reserve.n'),
          compensate: { capability, input: { n: 'outputs.charge.n' } },
        })
        .task('ship', capability, { ...task, input: { n: 'outputs.charge.n', fail: 'true' } })
        .build(),
      input: (i) => ({ n: i }),
      effects: 4,
      status: 'failed',
    },
    {
      kind: 'timer',
      plan: recipe(name('timer'))
        .task('before', capability, step('input.n'))
        .sleep('nap', { duration: '2s' })
        .task('after', capability, step('outputs.before.n'))
        .build(),
      input: (i) => ({ n: i }),
      effects: 2,
      status: 'completed',
    },
    {
      kind: 'signal',
      plan: recipe(name('signal'))
        .task('before', capability, step('input.n'))
        .waitForSignal('approval', { signal: CHAOS_SIGNAL, timeout: '30m' })
        .task('after', capability, step('outputs.before.n'))
        .build(),
      input: (i) => ({ n: i }),
      effects: 2,
      status: 'completed',
    },
  ];
}
