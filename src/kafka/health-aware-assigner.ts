import { AssignerProtocol, PartitionAssigners, type Assigner, type PartitionAssigner } from 'kafkajs';

/** What a member tells the group leader when it joins: the tier it belongs to. */
export type MemberHealth = 'healthy' | 'degraded';

export const HEALTH_AWARE_ASSIGNER = 'SousHealthAware';

interface Member {
  readonly memberId: string;
  readonly topics: readonly string[];
  readonly health: MemberHealth;
}

/**
 * Which member gets which partitions (pure, so it is unit-tested without a broker).
 *
 * Members of one group may subscribe to different topics: every shard of a service reads
 * the capability's shared topic, and only a region's shards its regional topic, only a
 * contract version's shards its versioned topic. Each topic's partitions go round-robin
 * to the members subscribed to it, and among those to the healthy ones when there is
 * any: a degraded member gets partitions only of topics no healthy member reads, so it
 * takes work only when nothing better can. The turn carries over from topic to topic,
 * so many single-partition topics still spread over the members.
 */
export function assignPartitions(
  members: readonly Member[],
  partitionsOf: (topic: string) => readonly number[],
): Map<string, Record<string, number[]>> {
  const out = new Map<string, Record<string, number[]>>();
  for (const m of members) out.set(m.memberId, {});
  const topics = [...new Set(members.flatMap((m) => m.topics))].sort();
  let turn = 0;
  for (const topic of topics) {
    const readers = members.filter((m) => m.topics.includes(topic));
    const healthy = readers.filter((m) => m.health === 'healthy');
    const tier = (healthy.length > 0 ? healthy : readers).map((m) => m.memberId).sort();
    for (const partition of [...partitionsOf(topic)].sort((a, b) => a - b)) {
      const memberId = tier[turn % tier.length];
      turn += 1;
      if (memberId === undefined) continue;
      const assignment = out.get(memberId) ?? {};
      (assignment[topic] ??= []).push(partition);
      out.set(memberId, assignment);
    }
  }
  return out;
}

/**
 * A kafkajs partition assigner implementing assignPartitions. A member's health is read
 * when it joins (`health()` at each join), so a member whose health changes rejoins to
 * have it count. The leader learns the partitions of topics it does not read itself.
 */
export function healthAwareAssigner(health: () => MemberHealth): PartitionAssigner {
  return ({ cluster }) => {
    const assigner: Assigner = {
      name: HEALTH_AWARE_ASSIGNER,
      version: 1,
      async assign({ members }) {
        const decoded: Member[] = members.map(({ memberId, memberMetadata }) => {
          const meta = AssignerProtocol.MemberMetadata.decode(memberMetadata);
          return { memberId, topics: meta?.topics ?? [], health: healthOf(meta?.userData) };
        });
        const topics = [...new Set(decoded.flatMap((m) => m.topics))];
        // kafkajs gives the leader only its own subscription; the others' topics need metadata too.
        await cluster.addMultipleTargetTopics(topics);
        const plan = assignPartitions(decoded, (topic) =>
          cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId),
        );
        return [...plan].map(([memberId, assignment]) => ({
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({
            version: assigner.version,
            assignment,
            userData: Buffer.alloc(0),
          }),
        }));
      },
      protocol({ topics }) {
        return {
          name: HEALTH_AWARE_ASSIGNER,
          metadata: AssignerProtocol.MemberMetadata.encode({
            version: assigner.version,
            topics,
            userData: Buffer.from(JSON.stringify({ health: health() })),
          }),
        };
      },
    };
    return assigner;
  };
}

/**
 * The assigners a sous worker offers, best first. Round-robin stays second so a group
 * being upgraded from workers that know only it keeps a protocol every member speaks
 * (the coordinator picks the first one all members list).
 */
export function workerAssigners(health: () => MemberHealth): PartitionAssigner[] {
  return [healthAwareAssigner(health), PartitionAssigners.roundRobin];
}

function healthOf(userData: Buffer | undefined): MemberHealth {
  if (userData === undefined || userData.length === 0) return 'healthy';
  try {
    const parsed: unknown = JSON.parse(userData.toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'health' in parsed && parsed.health === 'degraded')
      return 'degraded';
  } catch {
    // A member of another kind: counted as healthy, the tier it would have had before.
  }
  return 'healthy';
}
