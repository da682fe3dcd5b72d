import { z } from 'zod';

/*
 * The shard registry's wire format. Each worker process is a shard: it announces itself
 * on the compacted topic `sous.shards`, keyed by its shard id, and repeats the
 * announcement as its heartbeat; a tombstone (null value) under its key is its goodbye.
 * Operators' drain and resume requests reach shards on `sous.shard-control`, written by
 * the control plane through the outbox like every other command.
 */

/** Compacted: the latest announcement of each shard (tombstone: it left). One partition keeps one order. */
export const SHARD_REGISTRY_TOPIC = 'sous.shards';
/** Drain and resume requests to shards, keyed by shard id. */
export const SHARD_CONTROL_TOPIC = 'sous.shard-control';

/** A region name: lower-case letters, digits and dashes (it becomes part of a topic name). */
export const REGION = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const regionSchema = z
  .string()
  .regex(REGION, 'a region is lower-case letters, digits and dashes (e.g. eu-west)');

/**
 * Topic of the commands of a capability. A step without a residency constraint or a
 * contract goes to `sous.cmd.<capability>`, which every shard serving the capability
 * reads; one that must run in a region goes to `sous.cmd-<region>.<capability>`, read
 * only by that region's shards; one that asks for contract versions goes to the topic
 * of one version, `sous.cmd_v<version>.<capability>` (or `sous.cmd-<region>_v<version>.…`),
 * read only by shards of that version. The names cannot collide: a capability starts
 * with a letter, a region has no dot or underscore.
 */
export function commandTopicFor(capability: string, region: string | undefined, version?: number): string {
  const where = region === undefined ? '' : `-${region}`;
  const contract = version === undefined ? '' : `_v${version}`;
  return where === '' && contract === '' ? `sous.cmd.${capability}` : `sous.cmd${where}${contract}.${capability}`;
}

/** The capability a command topic carries, or undefined for a topic that is not one. */
export function capabilityOfTopic(topic: string): string | undefined {
  if (!topic.startsWith('sous.cmd')) return undefined;
  const dot = topic.indexOf('.', 'sous.cmd'.length);
  return dot < 0 ? undefined : topic.slice(dot + 1);
}

/** Every command topic a shard reads for one capability: shared, versioned, and its region's. */
export function shardCommandTopics(capability: string, version: number, region: string | null): string[] {
  const topics = [commandTopicFor(capability, undefined), commandTopicFor(capability, undefined, version)];
  if (region !== null) topics.push(commandTopicFor(capability, region), commandTopicFor(capability, region, version));
  return topics;
}

export const shardHealthSchema = z.enum(['healthy', 'degraded', 'draining']);
export type ShardHealth = z.infer<typeof shardHealthSchema>;

export const shardAnnouncementSchema = z.strictObject({
  kind: z.literal('shard.announce'),
  /** Unique per worker process (the worker id replies carry). */
  shardId: z.string().min(1).max(200),
  /** The service the shard belongs to (its consumer group without the `sous-worker.` prefix by default). */
  service: z.string().min(1).max(200),
  /** Host and process, for people. */
  instance: z.string().min(1).max(200),
  /**
   * Random per process start: a drain or resume names it, so a worker restarted under
   * the same shard id (a fixed workerId) is not drained by a request meant for the last one.
   */
  incarnation: z.string().min(1).max(64),
  region: regionSchema.nullable(),
  capabilities: z.array(z.strictObject({ name: z.string().min(1), version: z.number().int().positive() })).min(1),
  health: shardHealthSchema,
  /** Why the shard is degraded or draining, when it says. */
  reason: z.string().max(500).optional(),
  load: z.strictObject({
    inFlight: z.number().int().nonnegative(),
    concurrency: z.number().int().positive(),
  }),
  /** The shard's clock when it sent this. */
  at: z.iso.datetime(),
  /** How often the shard repeats its announcement. */
  heartbeatIntervalMs: z.number().int().positive(),
});
export type ShardAnnouncement = z.infer<typeof shardAnnouncementSchema>;

export const shardControlSchema = z.strictObject({
  kind: z.enum(['shard.drain', 'shard.resume']),
  messageId: z.uuid(),
  shardId: z.string().min(1),
  incarnation: z.string().min(1),
  /** Who asked (the API's actor), for the shard's log. */
  requestedBy: z.string().optional(),
});
export type ShardControl = z.infer<typeof shardControlSchema>;

/**
 * The control plane cancelled an attempt (its execution was cancelled, or its deadline
 * passed): every shard reads it, and the one running the attempt aborts its handler's
 * `ctx.signal`. Whatever the handler replies afterwards changes nothing.
 */
export const stepCancelSchema = z.strictObject({
  kind: z.literal('step.cancel'),
  messageId: z.uuid(),
  executionId: z.uuid(),
  stepExecutionId: z.uuid(),
  reason: z.string().max(500),
});
export type StepCancel = z.infer<typeof stepCancelSchema>;

/**
 * The contract versions a step accepts: a capability's version is a positive integer,
 * and a step may ask for `2` (exactly), `>=2`, or `2..3` (inclusive).
 */
export interface ContractRange {
  readonly min: number;
  /** Inclusive; absent: no upper bound. */
  readonly max?: number;
}

export const contractRangeSchema = z
  .strictObject({ min: z.number().int().positive(), max: z.number().int().positive().optional() })
  .refine((r) => r.max === undefined || r.max >= r.min, 'max must be at least min');

export function contractAccepts(range: ContractRange | undefined, version: number): boolean {
  if (range === undefined) return true;
  return version >= range.min && (range.max === undefined || version <= range.max);
}

/** `2`, `>=2`, `2..3` → a range; anything else → undefined (the caller names the problem). */
export function parseContractRange(text: string | number): ContractRange | undefined {
  if (typeof text === 'number') return Number.isInteger(text) && text >= 1 ? { min: text, max: text } : undefined;
  const t = text.trim();
  let m = /^(\d+)$/.exec(t);
  if (m !== null) return positive({ min: Number(m[1]), max: Number(m[1]) });
  m = /^>=\s*(\d+)$/.exec(t);
  if (m !== null) return positive({ min: Number(m[1]) });
  m = /^(\d+)\s*\.\.\s*(\d+)$/.exec(t);
  if (m !== null) return positive({ min: Number(m[1]), max: Number(m[2]) });
  return undefined;
}

function positive(r: ContractRange): ContractRange | undefined {
  if (r.min < 1 || (r.max !== undefined && r.max < r.min)) return undefined;
  return r;
}

export function formatContractRange(r: ContractRange): string {
  if (r.max === undefined) return `>=${r.min}`;
  return r.max === r.min ? String(r.min) : `${r.min}..${r.max}`;
}
