import {
  commandTopicFor,
  contractAccepts,
  formatContractRange,
  type ContractRange,
  type ShardAnnouncement,
} from '../protocol/shards.js';

/** What a step needs of a shard. */
export interface StepNeeds {
  readonly capability: string;
  /** Residency: only shards of this region may run it. */
  readonly region?: string;
  /** Contract versions of the capability the step accepts. */
  readonly contract?: ContractRange;
}

/** Why a step waits instead of being sent: a stable code and a sentence for people. */
export type WaitCode = 'no_shard' | 'no_shard_in_region' | 'no_matching_contract' | 'all_draining';

export type Route =
  | { readonly kind: 'send'; readonly topic: string }
  | { readonly kind: 'wait'; readonly code: WaitCode; readonly reason: string };

/**
 * Where a step's command goes, or why it waits (pure: a function of the live shards).
 *
 * Residency first: a step with a region goes only to that region's topic, which only
 * that region's shards read. Then the contract: a step asking for versions goes to the
 * topic of one version, the highest any live shard in range serves (healthy shards
 * first), which only shards of that version read. Shards that are draining count for
 * nothing. Health within the chosen topic is the group's business: its assigner gives
 * partitions to healthy members before degraded ones (src/kafka/health-aware-assigner.ts),
 * so back pressure stays consumer lag on that topic.
 */
export function routeStep(shards: Iterable<ShardAnnouncement>, needs: StepNeeds): Route {
  const serving: { shard: ShardAnnouncement; version: number }[] = [];
  for (const shard of shards) {
    const capability = shard.capabilities.find((c) => c.name === needs.capability);
    if (capability !== undefined) serving.push({ shard, version: capability.version });
  }
  const what = needs.capability;
  if (serving.length === 0) return wait('no_shard', `no shard serves ${what}`);
  const inRegion = needs.region === undefined ? serving : serving.filter((s) => s.shard.region === needs.region);
  if (inRegion.length === 0) return wait('no_shard_in_region', `no shard serves ${what} in region ${needs.region}`);
  const matching = inRegion.filter((s) => contractAccepts(needs.contract, s.version));
  if (matching.length === 0) {
    const have = [...new Set(inRegion.map((s) => s.version))].sort((a, b) => a - b).join(', ');
    const range = needs.contract === undefined ? '' : formatContractRange(needs.contract);
    return wait('no_matching_contract', `no shard serves ${what} at contract ${range} (live: ${have})`);
  }
  const open = matching.filter((s) => s.shard.health !== 'draining');
  if (open.length === 0) return wait('all_draining', `every shard serving ${what} is draining`);
  if (needs.contract === undefined) return { kind: 'send', topic: commandTopicFor(what, needs.region) };
  const healthy = open.filter((s) => s.shard.health === 'healthy');
  const version = Math.max(...(healthy.length > 0 ? healthy : open).map((s) => s.version));
  return { kind: 'send', topic: commandTopicFor(what, needs.region, version) };
}

function wait(code: WaitCode, reason: string): Route {
  return { kind: 'wait', code, reason };
}
