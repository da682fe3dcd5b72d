import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { Kafka } from '../kafka/kafka-client.js';
import type { Logger } from '../logger.js';
import type { Capability } from './define-capability.js';
import { WorkerConfigError } from './errors.js';
import { describeIssues } from './issues.js';
import type { PayloadStore } from './payload-store.js';

export interface WorkerOptions {
  /** A kafkajs client (`createKafka`); or give `brokers` and the worker makes one. */
  readonly kafka?: Kafka;
  /** `host:port` of one or more brokers, when `kafka` is not given. */
  readonly brokers?: readonly string[];
  /** What this worker executes: it subscribes to `sous.cmd.<name>` of each, and to nothing else. */
  readonly capabilities: readonly Capability[];
  /**
   * Region this worker runs in. When set, a command naming another region is refused
   * (terminal `region_mismatch` reply, and the command goes to the DLT): its data must
   * not be processed here. @default undefined (any region)
   */
  readonly region?: string;
  /**
   * Commands processed at once, over all capabilities; the worker fetches no more than
   * it can start. @default 10
   */
  readonly concurrency?: number;
  /**
   * Consumer group(s). Instances in the same group share the commands; another group
   * gets every command again. By default each capability has its own group,
   * `sous-worker.<capability>`, so every instance that executes a capability competes
   * for its commands whatever else it executes (during a rolling deploy that adds a
   * capability, old and new instances still share the work instead of both doing it).
   * A string puts all of this worker's capabilities in that one group: then every
   * member of the group must declare the same capabilities. A function maps each
   * capability to its group. @default (capability) => `sous-worker.${capability}`
   */
  readonly groupId?: string | ((capability: string) => string);
  /** Names this instance in replies and logs. @default `<hostname>-<pid>-<6 hex>` */
  readonly workerId?: string;
  /**
   * Times the worker tries to process one delivered command when something other than
   * the handler's verdict fails — fetching a claim-checked input, producing a reply the
   * cluster refuses — before it gives up on the command: it then goes to the DLT (an
   * unreachable broker is waited for instead, without counting). A handler's own
   * failures are replied, and retried as new attempts by the step's retry policy.
   * @default 3
   */
  readonly maxDeliveryAttempts?: number;
  /**
   * How long `stop()` lets running handlers finish before aborting their `signal`; a
   * handler that gives up then is not replied nor committed, and its command goes to
   * another instance. @default 30000
   */
  readonly drainTimeoutMs?: number;
  /**
   * Drain and stop on SIGTERM and SIGINT, then raise the signal again when nothing else
   * listens for it (so the process ends as it would have). @default true
   */
  readonly handleSignals?: boolean;
  /**
   * A crashed instance's partitions move to the others after this much silence. At
   * least 6000 (the broker's minimum). @default 10000
   */
  readonly sessionTimeoutMs?: number;
  /**
   * Largest serialised output a reply may carry; a larger one fails the step with the
   * terminal code `output_too_large` (Kafka would refuse the record). @default 524288 (512 KiB)
   */
  readonly maxReplyBytes?: number;
  /** Fetches inputs that came by reference (claim check). @default none: such commands fail `payload_unavailable` */
  readonly payloadStore?: PayloadStore;
  /** @default the shared sous logger */
  readonly logger?: Logger;
}

/** Worker options after validation, with defaults filled in. */
export interface WorkerConfig {
  readonly kafka: Kafka | undefined;
  readonly brokers: readonly string[];
  readonly capabilities: ReadonlyMap<string, Capability>;
  readonly region: string | undefined;
  readonly concurrency: number;
  /** Capability → consumer group. */
  readonly groups: ReadonlyMap<string, string>;
  readonly workerId: string;
  readonly maxDeliveryAttempts: number;
  readonly drainTimeoutMs: number;
  readonly handleSignals: boolean;
  readonly sessionTimeoutMs: number;
  readonly maxReplyBytes: number;
  readonly payloadStore: PayloadStore | undefined;
  readonly logger: Logger | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const hasMethods = (v: unknown, ...names: string[]) =>
  isObject(v) && names.every((n) => typeof v[n] === 'function');

const capabilitySchema = z.custom<Capability>(
  (v) =>
    isObject(v) &&
    typeof v.name === 'string' &&
    typeof v.handler === 'function' &&
    hasMethods(v.input, 'safeParse') &&
    hasMethods(v.output, 'safeParse'),
  'must be made by defineCapability',
);

const optionsSchema = z
  .strictObject({
    kafka: z.custom<Kafka>((v) => hasMethods(v, 'consumer', 'producer', 'admin'), 'must be a kafkajs client').optional(),
    brokers: z.array(z.string().regex(/^[^\s:/]+:\d+$/, 'must be host:port')).optional(),
    capabilities: z.array(capabilitySchema).min(1, 'declare at least one capability'),
    region: z.string().min(1).optional(),
    concurrency: z.number().int().min(1).max(10_000).default(10),
    groupId: z
      .custom<string | ((capability: string) => string)>(
        (v) => (typeof v === 'string' && v.length > 0) || typeof v === 'function',
        'must be a non-empty string or a function of the capability name',
      )
      .optional(),
    workerId: z.string().min(1).optional(),
    maxDeliveryAttempts: z.number().int().min(1).max(100).default(3),
    drainTimeoutMs: z.number().int().min(0).default(30_000),
    handleSignals: z.boolean().default(true),
    sessionTimeoutMs: z.number().int().min(6000).max(300_000).default(10_000),
    maxReplyBytes: z.number().int().min(1024).default(512 * 1024),
    payloadStore: z.custom<PayloadStore>((v) => hasMethods(v, 'fetch'), 'must have a fetch(ref) method').optional(),
    logger: z.custom<Logger>((v) => hasMethods(v, 'child', 'info', 'warn', 'error'), 'must be a pino logger').optional(),
  })
  .refine((o) => o.kafka !== undefined || (o.brokers?.length ?? 0) > 0, {
    message: 'give kafka (a kafkajs client) or brokers (host:port list)',
    path: ['kafka'],
  });

/**
 * Checks worker options once, at construction. Throws WorkerConfigError (a
 * ConfigInvalidError) naming every bad option.
 */
export function resolveWorkerOptions(options: WorkerOptions): WorkerConfig {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new WorkerConfigError(`invalid worker options: ${describeIssues(parsed.error, 'options')}`, {
      cause: parsed.error,
    });
  }
  const o = parsed.data;
  const capabilities = new Map<string, Capability>();
  for (const capability of o.capabilities) {
    if (capabilities.has(capability.name))
      throw new WorkerConfigError(`invalid worker options: capability ${capability.name} is declared twice`);
    capabilities.set(capability.name, capability);
  }
  const groupOf =
    typeof o.groupId === 'string'
      ? () => o.groupId as string
      : (o.groupId ?? ((capability: string) => `sous-worker.${capability}`));
  const groups = new Map<string, string>();
  for (const name of capabilities.keys()) {
    const group: unknown = groupOf(name);
    if (typeof group !== 'string' || group.length === 0)
      throw new WorkerConfigError(`invalid worker options: groupId(${JSON.stringify(name)}) must return a non-empty string`);
    groups.set(name, group);
  }
  return {
    kafka: o.kafka,
    brokers: o.brokers ?? [],
    capabilities,
    region: o.region,
    concurrency: o.concurrency,
    groups,
    workerId: o.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    maxDeliveryAttempts: o.maxDeliveryAttempts,
    drainTimeoutMs: o.drainTimeoutMs,
    handleSignals: o.handleSignals,
    sessionTimeoutMs: o.sessionTimeoutMs,
    maxReplyBytes: o.maxReplyBytes,
    payloadStore: o.payloadStore,
    logger: o.logger,
  };
}
