import { relayTopicFor } from '../relay/routing.js';
import type { Route, StepNeeds } from '../shards/route.js';

/** Where this control plane stands among the regions. */
export interface RegionTopology {
  /** This control plane's region (SOUS_REGION). */
  readonly local: string;
  /** Regions a relay links to this one (SOUS_REMOTE_REGIONS): steps resident there cross. */
  readonly remotes: ReadonlySet<string>;
}

/**
 * Routing with regions (pure): a step resident in a linked remote region goes to that
 * region's relay topic in this cluster; the remote region's shards and group choose the
 * worker there. Every other step is routed as before (`local`: the shard registry), so a
 * step resident in a region no relay links still waits visibly (`no_shard_in_region`).
 */
export function crossRegionRoute(
  topology: RegionTopology,
  local: (needs: StepNeeds) => Route,
): (needs: StepNeeds) => Route {
  return (needs) => {
    if (needs.region !== undefined && needs.region !== topology.local && topology.remotes.has(needs.region)) {
      return { kind: 'send', topic: relayTopicFor(needs.region) };
    }
    return local(needs);
  };
}

/** Whether a command for a step resident in `region` crosses to another region from `local`. */
export function crossesRegion(local: string | undefined, region: string | undefined, topic: string): boolean {
  return local !== undefined && region !== undefined && region !== local && topic === relayTopicFor(region);
}

/**
 * The region a step resident in `region` runs in when that is a linked remote region
 * (its commands and cancels cross there), else undefined: it runs here.
 */
export function remoteRegionOf(
  local: string | undefined,
  remotes: ReadonlySet<string> | undefined,
  region: string | undefined,
): string | undefined {
  return local !== undefined && region !== undefined && region !== local && remotes?.has(region) === true
    ? region
    : undefined;
}
