import type { ShardAnnouncement } from '../protocol/shards.js';

/** A shard as a process sees it: its last announcement and when that was heard. */
export interface LiveShard extends ShardAnnouncement {
  /** When the last announcement was sent (its Kafka timestamp, at most the time it was read), ms. */
  readonly lastHeartbeatMs: number;
  /** When this process first saw the shard, ms. */
  readonly firstSeenMs: number;
}

/** What a change did to the view; `routing` is false for a heartbeat that only moved the load. */
export interface ViewChange {
  readonly shardId: string;
  readonly kind: 'joined' | 'changed' | 'left' | 'expired';
  /** Whether routing could decide otherwise now (membership, health, capabilities or region changed). */
  readonly routing: boolean;
}

/**
 * The live view of the shard registry (pure: the caller feeds it the registry topic's
 * records and the clock). A shard is live from its first announcement until its
 * tombstone or until it has been silent longer than `timeoutMs`.
 *
 * The time of an announcement is its Kafka timestamp, capped at the time it was read: a
 * process reading the compacted topic from the beginning sees old announcements of
 * shards that died without a goodbye, and those must not look alive for another timeout.
 */
export class ShardRegistryView {
  readonly #shards = new Map<string, LiveShard>();

  constructor(readonly timeoutMs: number) {}

  /** Applies one record of the registry topic; returns the change, if any. */
  apply(
    shardId: string,
    announcement: ShardAnnouncement | null,
    sentAtMs: number,
    nowMs: number,
  ): ViewChange | undefined {
    const previous = this.#shards.get(shardId);
    if (announcement === null) {
      if (previous === undefined) return undefined;
      this.#shards.delete(shardId);
      return { shardId, kind: 'left', routing: true };
    }
    const lastHeartbeatMs = Math.min(sentAtMs, nowMs);
    if (nowMs - lastHeartbeatMs > this.timeoutMs) {
      // Already silent too long when read (an old record): as good as gone.
      if (previous === undefined) return undefined;
      this.#shards.delete(shardId);
      return { shardId, kind: 'expired', routing: true };
    }
    if (previous !== undefined && previous.lastHeartbeatMs > lastHeartbeatMs) return undefined;
    this.#shards.set(shardId, { ...announcement, lastHeartbeatMs, firstSeenMs: previous?.firstSeenMs ?? nowMs });
    if (previous === undefined) return { shardId, kind: 'joined', routing: true };
    return { shardId, kind: 'changed', routing: routingKey(previous) !== routingKey(announcement) };
  }

  /** Drops shards silent for longer than the timeout; returns what left. */
  expire(nowMs: number): ViewChange[] {
    const gone: ViewChange[] = [];
    for (const [shardId, shard] of this.#shards) {
      if (nowMs - shard.lastHeartbeatMs > this.timeoutMs) {
        this.#shards.delete(shardId);
        gone.push({ shardId, kind: 'expired', routing: true });
      }
    }
    return gone;
  }

  get(shardId: string): LiveShard | undefined {
    return this.#shards.get(shardId);
  }

  live(): LiveShard[] {
    return [...this.#shards.values()];
  }

  /** The live shards without a copy: routing reads them once per step, on the hot path. */
  iterate(): IterableIterator<LiveShard> {
    return this.#shards.values();
  }
}

/** What routing depends on; the load is left out (it changes on every heartbeat). */
function routingKey(s: ShardAnnouncement): string {
  return JSON.stringify([s.health, s.region, s.capabilities]);
}
