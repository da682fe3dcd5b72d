import { AsyncLocalStorage } from 'node:async_hooks';
import type { Decision } from '../engine/decide.js';
import type { RecipePlan } from '../recipe/plan.js';
import type { ControlPlaneMetrics, DecisionTrigger } from './control-plane-metrics.js';
import { observedChanges } from './step-transitions.js';

interface Scope {
  readonly decisions: Decision[];
  batches: number;
}

/**
 * Counts what decisions changed once their transaction has committed. The decision
 * code reports each batch it writes (`observe`, called inside the transaction); the
 * caller that owns the transaction runs it in `run`, which records the batches only
 * when the transaction resolved, so a batch rolled back (and retried one reply at a
 * time) is never counted twice. The scope follows async calls (AsyncLocalStorage), so
 * batches of partitions decided at once stay apart.
 */
export class DecisionObserver {
  readonly #scope = new AsyncLocalStorage<Scope>();

  constructor(
    private readonly metrics: ControlPlaneMetrics,
    private readonly planOf: (recipe: string, version: number) => RecipePlan | undefined,
  ) {}

  /** What the decision code calls after writing a batch (DecisionEnvironment.observe). */
  readonly observe = (decisions: ReadonlyMap<string, Decision>): void => {
    const scope = this.#scope.getStore();
    if (scope !== undefined) {
      scope.decisions.push(...decisions.values());
      scope.batches++;
      return;
    }
    // A decision outside any observed transaction (a caller of runDecision of its own):
    // its commit cannot be seen, so it is counted as written.
    this.metrics.changed(observedChanges(decisions.values(), this.planOf));
  };

  /**
   * Runs one decision transaction and, once it has committed, records its duration, the
   * triggers it decided (`triggers`, by default one per batch written) and what it changed.
   * `runSeconds` gives, per attempt, how long it ran, when the replies said so.
   */
  async run<T>(
    trigger: DecisionTrigger,
    work: () => Promise<T>,
    options: { triggers?: (result: T) => number; runSeconds?: ReadonlyMap<string, number> } = {},
  ): Promise<T> {
    const scope: Scope = { decisions: [], batches: 0 };
    const started = performance.now();
    const result = await this.#scope.run(scope, work);
    const seconds = (performance.now() - started) / 1000;
    this.metrics.decided(trigger, seconds, options.triggers?.(result) ?? scope.batches);
    this.metrics.changed(observedChanges(scope.decisions, this.planOf), options.runSeconds);
    return result;
  }
}
