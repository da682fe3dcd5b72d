import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { readCompactedTopic, type CompactedTopicReader } from '../kafka/compacted-topic-reader.js';
import type { Kafka } from '../kafka/kafka-client.js';
import type { Logger } from '../logger.js';
import { SHARD_REGISTRY_TOPIC, shardAnnouncementSchema } from '../protocol/shards.js';
import { ShardRegistryView, type LiveShard, type ViewChange } from '../shards/registry-view.js';
import { routeStep, type Route, type StepNeeds } from '../shards/route.js';
import { markShardsGone, upsertShards } from '../store/shards.js';

export interface ShardRegistryOptions {
  readonly kafka: Kafka;
  readonly db: Kysely<Database>;
  /** A shard silent this long is gone. */
  readonly timeoutMs: number;
  /** Least time between two mirror writes of heartbeats that changed nothing but the load. */
  readonly mirrorIntervalMs: number;
  readonly log: Logger;
}

export type ShardListener = (changes: readonly ViewChange[]) => void;

/**
 * A control plane's live view of the shard registry: it reads the registry topic from
 * its beginning and follows it, drops shards silent past the timeout, routes steps by
 * the view, tells listeners when routing could decide otherwise, and mirrors the view to
 * sous.shard for SQL (every change of membership or health at once, heartbeats at most
 * every `mirrorIntervalMs`).
 */
export class ShardRegistry {
  readonly #view: ShardRegistryView;
  readonly #listeners = new Set<ShardListener>();
  #reader: CompactedTopicReader | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Shards whose record moved since the last mirror write, and those gone. */
  readonly #dirty = new Set<string>();
  readonly #gone = new Map<string, number>();
  #urgent = false;
  #lastMirrorMs = 0;
  #mirroring: Promise<void> = Promise.resolve();

  constructor(private readonly options: ShardRegistryOptions) {
    this.#view = new ShardRegistryView(options.timeoutMs);
  }

  /** Reads the registry up to its end before resolving: routing then knows every live shard. */
  async start(): Promise<void> {
    this.#reader = await readCompactedTopic({
      kafka: this.options.kafka,
      topic: SHARD_REGISTRY_TOPIC,
      groupPrefix: 'sous-registry',
      logger: this.options.log,
      handle: (record) => {
        let announcement = null;
        if (record.value !== null) {
          const parsed = shardAnnouncementSchema.safeParse(JSON.parse(record.value));
          if (!parsed.success) {
            this.options.log.warn(
              { key: record.key, reason: parsed.error.message },
              'shard announcement ignored: malformed',
            );
            return;
          }
          announcement = parsed.data;
        }
        const previous = this.#view.get(record.key);
        const change = this.#view.apply(record.key, announcement, record.timestampMs, Date.now());
        if (change === undefined) return;
        if (change.kind === 'left' || change.kind === 'expired') {
          this.#gone.set(change.shardId, previous?.lastHeartbeatMs ?? Date.now());
        } else {
          this.#gone.delete(change.shardId);
          this.#dirty.add(change.shardId);
        }
        if (change.routing) {
          this.#urgent = true;
          this.#emit([change]);
        }
      },
    });
    await this.#reader.caughtUp;
    this.#tick();
    await this.#mirroring;
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#reader?.stop();
    await this.#mirroring;
  }

  route(needs: StepNeeds): Route {
    return routeStep(this.#view.iterate(), needs);
  }

  live(): LiveShard[] {
    return this.#view.live();
  }

  get(shardId: string): LiveShard | undefined {
    return this.#view.get(shardId);
  }

  /** Called when routing could decide otherwise (a shard joined, left, or changed health or capabilities). */
  onChange(listener: ShardListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Writes the mirror now (tests, and before answering from it). */
  async flush(): Promise<void> {
    this.#urgent = true;
    this.#mirror();
    await this.#mirroring;
  }

  #emit(changes: readonly ViewChange[]): void {
    for (const listener of this.#listeners) {
      try {
        listener(changes);
      } catch (error) {
        this.options.log.error(
          { reason: error instanceof Error ? error.message : String(error) },
          'shard listener failed',
        );
      }
    }
  }

  #tick(): void {
    const now = Date.now();
    const expired = this.#view.expire(now);
    if (expired.length > 0) {
      for (const change of expired) this.#gone.set(change.shardId, now - this.options.timeoutMs);
      this.#urgent = true;
      this.options.log.warn({ shards: expired.map((c) => c.shardId) }, 'shards silent past the timeout: gone');
      this.#emit(expired);
    }
    if (this.#urgent || (this.#dirty.size > 0 && now - this.#lastMirrorMs >= this.options.mirrorIntervalMs))
      this.#mirror();
    this.#timer = setTimeout(() => this.#tick(), 500);
    this.#timer.unref();
  }

  /** One mirror write at a time; a failed one is tried again on the next tick. */
  #mirror(): void {
    this.#urgent = false;
    this.#lastMirrorMs = Date.now();
    const live = [...this.#dirty].flatMap((id) => {
      const s = this.#view.get(id);
      return s === undefined ? [] : [s];
    });
    const gone = [...this.#gone];
    this.#dirty.clear();
    this.#gone.clear();
    this.#mirroring = this.#mirroring.then(async () => {
      try {
        await upsertShards(
          this.options.db,
          live.map((s) => ({
            shardId: s.shardId,
            service: s.service,
            instance: s.instance,
            incarnation: s.incarnation,
            region: s.region,
            capabilities: s.capabilities,
            health: s.health,
            reason: s.reason ?? null,
            inFlight: s.load.inFlight,
            concurrency: s.load.concurrency,
            heartbeatIntervalMs: s.heartbeatIntervalMs,
            firstSeenAt: new Date(s.firstSeenMs).toISOString(),
            lastHeartbeatAt: new Date(s.lastHeartbeatMs).toISOString(),
          })),
        );
        await markShardsGone(
          this.options.db,
          gone.map(([shardId, ms]) => ({ shardId, lastHeartbeatAt: new Date(ms).toISOString() })),
        );
      } catch (error) {
        this.options.log.warn(
          { reason: error instanceof Error ? error.message : String(error) },
          'shard mirror not written',
        );
        for (const s of live)
          if (!this.#dirty.has(s.shardId) && this.#view.get(s.shardId) !== undefined) this.#dirty.add(s.shardId);
        for (const [id, ms] of gone) if (this.#view.get(id) === undefined) this.#gone.set(id, ms);
        this.#urgent = true;
      }
    });
  }
}
