import type { RecordProducer } from '../kafka/producer.js';
import type { Logger } from '../logger.js';
import { SHARD_REGISTRY_TOPIC, type ShardAnnouncement, type ShardHealth } from '../protocol/shards.js';

export interface ShardIdentity {
  readonly shardId: string;
  readonly service: string;
  readonly instance: string;
  readonly incarnation: string;
  readonly region: string | null;
  readonly capabilities: readonly { readonly name: string; readonly version: number }[];
  readonly concurrency: number;
}

/**
 * A worker's presence in the shard registry: it announces itself on `sous.shards` when
 * it starts, repeats the announcement every `intervalMs` as its heartbeat (with its
 * health and load), announces at once when its health changes, and leaves a tombstone
 * (its goodbye) when it stops. The announcements go straight to Kafka: they are the
 * worker's own word, like its replies, not a command of the control plane.
 */
export class ShardPresence {
  #health: ShardHealth = 'healthy';
  #reason: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #sending: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(
    private readonly identity: ShardIdentity,
    private readonly producer: RecordProducer,
    private readonly intervalMs: number,
    private readonly inFlight: () => number,
    private readonly log: Logger,
    /** Runs before each heartbeat (the worker's health check); a throw is logged and the beat sent anyway. */
    private readonly beforeHeartbeat: () => Promise<void> = () => Promise.resolve(),
  ) {}

  get health(): ShardHealth {
    return this.#health;
  }

  /** Starts heartbeating; the first announcement is sent before this resolves. */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.announce();
    this.#schedule();
  }

  /** Changes the health the shard announces (and announces it at once); returns whether it changed. */
  async setHealth(health: ShardHealth, reason?: string): Promise<boolean> {
    const changed = health !== this.#health || reason !== this.#reason;
    this.#health = health;
    this.#reason = reason;
    if (changed) await this.announce();
    return changed;
  }

  /** One announcement now (one at a time: a heartbeat never overtakes a health change). */
  announce(): Promise<void> {
    const body: ShardAnnouncement = {
      kind: 'shard.announce',
      shardId: this.identity.shardId,
      service: this.identity.service,
      instance: this.identity.instance,
      incarnation: this.identity.incarnation,
      region: this.identity.region,
      capabilities: [...this.identity.capabilities],
      health: this.#health,
      ...(this.#reason === undefined ? {} : { reason: this.#reason }),
      load: { inFlight: this.inFlight(), concurrency: this.identity.concurrency },
      at: new Date().toISOString(),
      heartbeatIntervalMs: this.intervalMs,
    };
    const send = this.#sending.then(() =>
      this.producer.send([{ topic: SHARD_REGISTRY_TOPIC, key: this.identity.shardId, value: JSON.stringify(body) }]),
    );
    this.#sending = send.catch(() => undefined);
    return send;
  }

  /** Stops heartbeating and says goodbye (a tombstone): the control planes drop the shard at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#sending;
    await this.producer.send([{ topic: SHARD_REGISTRY_TOPIC, key: this.identity.shardId, value: null }]);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.beforeHeartbeat()
        .catch((error: unknown) => {
          this.log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'health check failed');
        })
        .then(() => this.announce())
        .then(
          () => this.#schedule(),
          (error: unknown) => {
            // A broker outage: the control planes will see the shard silent, which is the truth.
            this.log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'heartbeat not sent');
            this.#schedule();
          },
        );
    }, this.intervalMs);
    this.#timer.unref();
  }
}
