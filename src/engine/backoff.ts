import type { RetryPolicy } from '../recipe/plan.js';

/**
 * Wait before the attempt after `attempt` (1-based): exponential, capped at the
 * maximum, then varied by ±jitter. `random` in [0, 1) comes from the caller so a
 * decision stays replayable.
 */
export function retryDelayMs(policy: RetryPolicy, attempt: number, random: number): number {
  const exponential = policy.initialIntervalMs * policy.backoffCoefficient ** Math.max(0, attempt - 1);
  const capped = Math.min(policy.maxIntervalMs, exponential);
  const jittered = capped * (1 + policy.jitter * (2 * random - 1));
  return Math.max(0, Math.round(jittered));
}
