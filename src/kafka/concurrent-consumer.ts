import { setTimeout as sleep } from 'node:timers/promises';
import type { EachBatchPayload, KafkaMessage } from 'kafkajs';
import { logger as rootLogger, type Logger } from '../logger.js';
import type { Kafka } from './kafka-client.js';
import { workerAssigners, type MemberHealth } from './health-aware-assigner.js';
import { Slots } from './slots.js';
import { runSupervisedConsumer, type SupervisedConsumer } from './supervised-consumer.js';

export interface ConcurrentConsumerOptions {
  readonly kafka: Kafka;
  /** Consumer group: members share the topics' partitions. */
  readonly groupId: string;
  readonly topics: readonly string[];
  /** Start a new group at the earliest offset rather than the latest. @default false */
  readonly fromBeginning?: boolean;
  /** A silent member's partitions move to the others this much later. @default 10000 */
  readonly sessionTimeoutMs?: number;
  /** Records handled at once, over all partitions. */
  readonly concurrency: number;
  /**
   * Handles one record. Records with the same key run one at a time, in offset order;
   * others run at once up to `concurrency`. Should not throw: a throw is logged and the
   * record handled again after a back-off (it is never skipped).
   */
  readonly handle: (message: KafkaMessage, where: { topic: string; partition: number }) => Promise<void>;
  /**
   * The member's health, read at each join: with it the group assigns partitions with
   * the health-aware assigner (degraded members only get topics no healthy member reads).
   * @default kafkajs's round-robin assigner
   */
  readonly memberHealth?: () => MemberHealth;
  /** Least time between two offset commits. @default 100 */
  readonly commitIntervalMs?: number;
  readonly logger?: Logger;
}

export interface ConcurrentConsumer {
  /** Resolves once the group has been joined. */
  readonly ready: Promise<void>;
  /** The member is in its group now (readiness). */
  joined(): boolean;
  /** Stops fetching, waits for the records in hand, commits past them, leaves the group. */
  stop(): Promise<void>;
}

/** One fetched record this member took: running (or waiting for its key), or done and not yet committed. */
interface Entry {
  readonly offset: bigint;
  done: boolean;
}

interface PartitionState {
  readonly topic: string;
  readonly partition: number;
  /** Assigned to this member by the last join. */
  owned: boolean;
  /** No batch since the last join: the next one starts at the group's committed position. */
  fresh: boolean;
  /** The position this member last committed. */
  committed: bigint;
  /** By offset: records taken and not yet committed past. */
  readonly entries: Map<string, Entry>;
  /** By key: the last record of that key taken, which the next one of the key waits for. */
  readonly chains: Map<string, Promise<void>>;
}

/**
 * A consumer-group member that handles the records of each partition concurrently (up
 * to `concurrency` at once, one at a time per key) and never holds up its fetch loop
 * for a slow record.
 *
 * kafkajs hands a partition's records to `eachBatch` and fetches again only once every
 * batch of the last fetch has returned, heartbeating between batches; a handler that
 * outlives the session timeout then costs the member its partitions and the record is
 * delivered again. Here `eachBatch` only takes records (waiting for a free slot when all
 * are busy, heartbeating meanwhile) and returns: handlers run beside the fetch loop, so
 * kafkajs keeps fetching, heartbeating and rejoining as usual while one runs for hours.
 *
 * Positions: kafkajs fetches from the offset last resolved, so a record is resolved as
 * soon as it is taken. What the group commits is ours: per partition, past the records
 * whose handling finished, up to the first that has not (the contiguous prefix), at most
 * every `commitIntervalMs`. A crash redelivers from there, so every record may arrive
 * twice, as anywhere in sous. After a rejoin kafkajs fetches again from the committed
 * position; records this process already took (running or done) are not taken twice.
 */
export async function runConcurrentConsumer(options: ConcurrentConsumerOptions): Promise<ConcurrentConsumer> {
  const log = (options.logger ?? rootLogger).child({ component: 'consumer', groupId: options.groupId });
  const sessionTimeout = options.sessionTimeoutMs ?? 10_000;
  const heartbeatInterval = Math.max(500, Math.floor(sessionTimeout / 4));
  const commitIntervalMs = options.commitIntervalMs ?? 100;
  const slots = new Slots(options.concurrency);
  const partitions = new Map<string, PartitionState>();
  const tasks = new Set<Promise<void>>();
  let stopping = false;
  // Set once the consumer runs; commits before that have nothing to commit.
  const group: { consumer?: SupervisedConsumer } = {};

  const stateOf = (topic: string, partition: number): PartitionState => {
    const id = `${topic}\u0000${partition}`;
    let state = partitions.get(id);
    if (state === undefined) {
      state = { topic, partition, owned: true, fresh: false, committed: -1n, entries: new Map(), chains: new Map() };
      partitions.set(id, state);
    }
    return state;
  };

  // ---- commits -----------------------------------------------------------------------

  let committing: Promise<void> | undefined;
  let commitTimer: NodeJS.Timeout | undefined;
  let commitWanted = false;
  let lastCommitAt = 0;

  /** Where each owned partition can be committed now, where that moved since the last commit. */
  const positions = () => {
    const moved: { state: PartitionState; next: bigint }[] = [];
    for (const state of partitions.values()) {
      if (!state.owned) continue;
      // Sorted: after a partition came back in a rebalance, entries may not be in insertion order.
      const entries = [...state.entries.values()].sort((a, b) => (a.offset < b.offset ? -1 : 1));
      let next: bigint | undefined;
      for (const entry of entries) {
        if (!entry.done) break;
        next = entry.offset + 1n;
      }
      if (next !== undefined && next > state.committed) moved.push({ state, next });
    }
    return moved;
  };

  const commit = async (): Promise<void> => {
    const moved = positions();
    if (moved.length === 0 || group.consumer === undefined) return;
    await group.consumer.commitOffsets(
      moved.map(({ state, next }) => ({ topic: state.topic, partition: state.partition, offset: next.toString() })),
    );
    for (const { state, next } of moved) {
      state.committed = next;
      for (const [key, entry] of state.entries) if (entry.offset < next) state.entries.delete(key);
    }
  };

  /** Commits soon: at once when the last commit is older than the interval, else when it is. One at a time. */
  const requestCommit = () => {
    if (committing !== undefined) {
      commitWanted = true;
      return;
    }
    if (commitTimer !== undefined) return;
    const wait = lastCommitAt + commitIntervalMs - Date.now();
    if (wait > 0) {
      commitTimer = setTimeout(() => {
        commitTimer = undefined;
        requestCommit();
      }, wait);
      return;
    }
    committing = commit()
      .catch((error: unknown) => {
        // A rebalance or a broker hiccup: the positions stay and the next commit carries them.
        log.debug({ reason: error instanceof Error ? error.message : String(error) }, 'offset commit failed');
      })
      .finally(() => {
        committing = undefined;
        lastCommitAt = Date.now();
        if (commitWanted) {
          commitWanted = false;
          requestCommit();
        }
      });
  };

  // ---- handling ----------------------------------------------------------------------

  const handleUntilDone = async (message: KafkaMessage, where: { topic: string; partition: number }) => {
    for (let attempt = 1; ; attempt++) {
      try {
        await options.handle(message, where);
        return true;
      } catch (error) {
        log.error(
          { ...where, offset: message.offset, attempt, reason: error instanceof Error ? error.message : String(error) },
          'record handling failed; trying again',
        );
        // Stopping: leave it uncommitted, so it is delivered again, here or elsewhere.
        if (stopping) return false;
        await sleep(Math.min(30_000, 1000 * 2 ** (attempt - 1)));
      }
    }
  };

  /** Takes a record: it runs once the previous record of its key has finished. The caller holds a slot for it. */
  const take = (state: PartitionState, message: KafkaMessage) => {
    const entry: Entry = { offset: BigInt(message.offset), done: false };
    state.entries.set(message.offset, entry);
    // latin1 maps bytes to characters one to one: distinct keys stay distinct.
    const key = message.key?.toString('latin1');
    const previous = key === undefined ? undefined : state.chains.get(key);
    const where = { topic: state.topic, partition: state.partition };
    const run = async () => {
      if (previous !== undefined) await previous;
      entry.done = await handleUntilDone(message, where);
    };
    // Never rejects: handleUntilDone catches, and so the next record of the key always runs.
    const task: Promise<void> = run().finally(() => {
      slots.release();
      tasks.delete(task);
      if (key !== undefined && state.chains.get(key) === task) state.chains.delete(key);
      // A partition this member lost keeps nothing for the commit; the new owner decides.
      if (!state.owned) state.entries.delete(message.offset);
      requestCommit();
    });
    tasks.add(task);
    if (key !== undefined) state.chains.set(key, task);
  };

  /** The batch must end: the worker stops, kafkajs stops, or a seek made the batch stale. */
  const ending = (payload: EachBatchPayload) => stopping || !payload.isRunning() || payload.isStale();

  /** A free slot; heartbeats while waiting. False when the batch should end (stopping, rebalance). */
  const acquire = async (payload: EachBatchPayload): Promise<boolean> => {
    const waiting = slots.acquire();
    if (waiting.granted) return true;
    for (;;) {
      const granted = await Promise.race([
        waiting.promise.then(() => true),
        sleep(Math.min(1000, heartbeatInterval)).then(() => false),
      ]);
      if (granted) return true;
      if (ending(payload)) return waiting.cancel();
      try {
        await payload.heartbeat();
      } catch (error) {
        // Rebalancing: end the batch so kafkajs rejoins; untaken records are fetched again.
        log.debug({ reason: error instanceof Error ? error.message : String(error) }, 'heartbeat failed');
        return waiting.cancel();
      }
    }
  };

  const eachBatch = async (payload: EachBatchPayload): Promise<void> => {
    const { batch } = payload;
    const state = stateOf(batch.topic, batch.partition);
    state.owned = true;
    const first = batch.firstOffset();
    if (state.fresh && first !== null) {
      // After a join kafkajs fetches from the group's committed position: what lies below
      // it was committed past (by this member, or by another while it owned the
      // partition), so it must not hold this member's commits back, nor pull them below it.
      state.fresh = false;
      state.committed = -1n;
      for (const [offset, entry] of state.entries) if (entry.offset < BigInt(first)) state.entries.delete(offset);
    }
    for (const message of batch.messages) {
      if (ending(payload)) return;
      if (!state.entries.has(message.offset)) {
        if (!(await acquire(payload))) return;
        if (ending(payload)) {
          slots.release();
          return;
        }
        take(state, message);
      }
      // Resolved as soon as taken: kafkajs fetches on from here, the commit waits for the handling.
      payload.resolveOffset(message.offset);
    }
  };

  const onGroupJoin = (assignment: Readonly<Record<string, readonly number[]>>) => {
    for (const [id, state] of partitions) {
      state.owned = assignment[state.topic]?.includes(state.partition) ?? false;
      state.fresh = true;
      if (state.owned) continue;
      // Lost: forget what finished (uncommitted, it is redelivered to the new owner); keep
      // what still runs so that, should the partition come back, it is not taken twice.
      for (const [offset, entry] of state.entries) if (entry.done) state.entries.delete(offset);
      if (state.entries.size === 0) partitions.delete(id);
    }
  };

  const running = await runSupervisedConsumer(
    options.kafka,
    {
      groupId: options.groupId,
      // Only records of committed Connect transactions (exactly-once source delivery).
      readUncommitted: false,
      maxWaitTimeInMs: 100,
      sessionTimeout,
      heartbeatInterval,
      ...(options.memberHealth === undefined ? {} : { partitionAssigners: workerAssigners(options.memberHealth) }),
    },
    { topics: [...options.topics], fromBeginning: options.fromBeginning ?? false },
    {
      // Positions are committed by us (the contiguous prefix), never by kafkajs.
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Batches of different partitions wait for slots side by side, so slots go round them in turn.
      partitionsConsumedConcurrently: Math.max(1, options.concurrency),
      eachBatch,
    },
    log,
    { onGroupJoin },
  );
  group.consumer = running;

  return {
    ready: running.ready,
    joined: () => running.joined(),
    async stop() {
      stopping = true;
      running.pause();
      while (tasks.size > 0) await Promise.allSettled([...tasks]);
      if (commitTimer !== undefined) clearTimeout(commitTimer);
      await committing;
      await commit().catch((error: unknown) => {
        log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'last offset commit failed');
      });
      await running.stop();
    },
  };
}
