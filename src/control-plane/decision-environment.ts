import { REPLY_TOPIC } from '../protocol/messages.js';
import { commandTopicFor } from '../protocol/shards.js';
import type { Route, StepNeeds } from '../shards/route.js';
import type { Decision } from '../engine/decide.js';
import { ExecutionStates } from './execution-states.js';
import type { PlanCache } from './plan-cache.js';

/** What decisions need from the process around them; compiled once by the control plane. */
export interface DecisionEnvironment {
  readonly plans: PlanCache;
  /** Locks executions and gives their state (cached, or snapshot and events). @default new ExecutionStates() */
  readonly states: ExecutionStates;
  /** Topic replies to this control plane's commands go to. @default 'sous.replies' */
  readonly replyTopic: string;
  /**
   * This control plane's region, when it runs with regions: a step resident in another
   * region is relayed there, and its replies come back through this region's relay topic.
   * @default none
   */
  readonly region?: string;
  /** Regions a relay links to this one: a step resident in one of them runs there (and is cancelled there). @default none */
  readonly remoteRegions?: ReadonlySet<string>;
  /** Inputs larger than this travel by reference (claim check). @default 65536 */
  readonly maxInlinePayloadBytes: number;
  /** graphile-worker task that fires engine timers. */
  readonly timerTask: string;
  readonly now: () => Date;
  /**
   * Where a scheduled step's command goes, or why it waits (the shard registry's view).
   * @default every command to its capability's (or region's) topic, never held
   */
  readonly route: (needs: StepNeeds) => Route;
  /**
   * Told each batch of decisions once written, inside its transaction (metrics count
   * them when that transaction commits). @default none
   */
  readonly observe?: (decisions: ReadonlyMap<string, Decision>) => void;
}

export const TIMER_TASK = 'sous_timer';

/** Routing without a registry: every command to its capability's (or region's) topic at once. */
export function staticRoute(needs: StepNeeds): Route {
  return { kind: 'send', topic: commandTopicFor(needs.capability, needs.region) };
}

export function defaultDecisionEnvironment(
  plans: PlanCache,
  overrides: Partial<DecisionEnvironment> = {},
): DecisionEnvironment {
  return {
    plans,
    states: new ExecutionStates(),
    replyTopic: REPLY_TOPIC,
    maxInlinePayloadBytes: 64 * 1024,
    timerTask: TIMER_TASK,
    now: () => new Date(),
    route: staticRoute,
    ...overrides,
  };
}
