import { z } from 'zod';
import { regionSchema } from '../protocol/shards.js';
import type { Kafka } from '../kafka/kafka-client.js';
import type { Logger } from '../logger.js';
import type { KafkaSecurityOptions } from '../security/config.js';
import type { Capability } from './define-capability.js';
import { WorkerConfigError } from './errors.js';
import type { PayloadStore } from './payload-store.js';

export interface WorkerOptions {
  /**
   * A kafkajs client, or `brokers` to make one. A client passed here also carries the
   * shard's registry announcements, with its own retries (the client made from `brokers`
   * gives them up after a second or two of a broker outage, so a stop never waits on them).
   */
  readonly kafka?: Kafka;
  /** host:port of the brokers, when `kafka` is not given. */
  readonly brokers?: readonly string[];
  /**
   * TLS and SASL to the brokers, when `kafka` is not given: `{ ssl: { ca }, sasl: {
   * mechanism: 'scram-sha-256', username, password } }`. `loadSecurityConfig().kafka` reads
   * them from SOUS_KAFKA_SSL* and SOUS_KAFKA_SASL_* as the other sous processes do.
   * @default plaintext, no authentication
   */
  readonly kafkaSecurity?: KafkaSecurityOptions;
  /** What this worker executes: it subscribes to `sous.cmd.<name>` of each, and nothing else. */
  readonly capabilities: readonly Capability[];
  /**
   * Region this shard runs in: besides each capability's shared topic it reads the
   * region's topics, where steps with that `region` (residency) go and nowhere else.
   * Lower-case letters, digits and dashes. @default none: it runs only steps without a region
   */
  readonly region?: string;
  /** Names the service in the shard registry. @default the consumer group without `sous-worker.` */
  readonly service?: string;
  /**
   * How often the shard repeats its announcement in the registry (its heartbeat, with its
   * health and load). Control planes drop a shard silent for longer than their
   * `shardTimeoutMs` (default 10 s). @default 2000
   */
  readonly heartbeatIntervalMs?: number;
  /**
   * Asked before each heartbeat: `degraded` (e.g. a database it needs is slow) makes
   * the group give its partitions to healthy shards while there are any, `healthy`
   * takes them back. `Worker.setHealth` does the same by hand. @default none: healthy
   */
  readonly healthCheck?: () => Promise<'healthy' | 'degraded'> | 'healthy' | 'degraded';
  /**
   * Commands run at once, over all partitions. Commands with the same Kafka key (the
   * attempts of one step) run one at a time, in order. @default 10
   */
  readonly concurrency?: number;
  /**
   * A command still running this long gets a `step.started` reply of its own, so the
   * step shows as running; a shorter one gets only its `step.completed`/`step.failed`
   * reply, which carries when it started. Commands of steps with a schedule-to-start,
   * start-to-close or heartbeat timeout reply `step.started` at once whatever this is
   * (the control plane times those from it); 0 replies it at once for every command.
   * @default 250
   */
  readonly startedReplyAfterMs?: number;
  /**
   * How long the group waits for a silent worker before moving its partitions to others
   * (which then run its unfinished commands again). The worker heartbeats while handlers
   * run, however long they take. The broker bounds it (group.min/max.session.timeout.ms,
   * by default 6 s to 30 min). @default 10000
   */
  readonly sessionTimeoutMs?: number;
  /**
   * Consumer group: instances sharing it share the commands.
   * @default `sous-worker.` + the capability names, sorted, joined by `+`
   */
  readonly groupId?: string;
  /** Names this instance in replies and logs. @default `<hostname>-<pid>-<random>` */
  readonly workerId?: string;
  /** In-process attempts at a command whose processing throws before it goes to the DLT. @default 3 */
  readonly maxDeliveryAttempts?: number;
  /** How long `stop()` lets running handlers finish before aborting them. @default 30000 */
  readonly drainTimeoutMs?: number;
  /** Stop gracefully on SIGTERM and SIGINT. @default true */
  readonly handleSignals?: boolean;
  /**
   * Fetches inputs that came by reference (claim check) and stores outputs over its inline
   * limit (docs/payloads.md). @default none: such inputs fail, outputs all go inline
   */
  readonly payloadStore?: PayloadStore;
  /**
   * Serves /metrics (Prometheus), /healthz (liveness) and /readyz (Kafka reachable, the
   * consumer in its group) over HTTP on this port once started; 0 takes any free port
   * (see `Worker.probesUrl`). @default none: not served
   */
  readonly metricsPort?: number;
  /** Interface the metrics port listens on (0.0.0.0 for a scraper on another host). @default '127.0.0.1' */
  readonly metricsHost?: string;
  /**
   * Add the process's own metrics (CPU, memory, event loop, GC) to the worker's: turn
   * off when something else in the process already exports them. @default true
   */
  readonly processMetrics?: boolean;
  /** Longest a readiness check may take. @default 2000 */
  readonly checkTimeoutMs?: number;
  readonly logger?: Logger;
}

// Strict: a misspelt option is an error, not silently ignored. Objects the worker takes
// as they are (a Kafka client, a payload store, a logger) are only checked for presence.
const optionsSchema = z.strictObject({
  kafka: z.custom<Kafka>((v) => typeof v === 'object' && v !== null).optional(),
  // An empty list is refused below, with "give kafka or brokers".
  brokers: z.array(z.string().regex(/^[^:\s]+:\d+$/, 'brokers must be host:port')).optional(),
  kafkaSecurity: z
    .strictObject({
      ssl: z
        .union([
          z.boolean(),
          z.strictObject({
            ca: z.string().min(1, 'kafkaSecurity.ssl.ca must be PEM text').optional(),
            cert: z.string().min(1).optional(),
            key: z.string().min(1).optional(),
            rejectUnauthorized: z.boolean().optional(),
          }),
        ])
        .optional(),
      sasl: z
        .strictObject({
          mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512'], {
            error: 'kafkaSecurity.sasl.mechanism must be plain, scram-sha-256 or scram-sha-512',
          }),
          username: z.string().min(1, 'kafkaSecurity.sasl.username is required'),
          password: z.string().min(1, 'kafkaSecurity.sasl.password is required'),
        })
        .optional(),
    })
    .optional(),
  payloadStore: z.custom<PayloadStore>((v) => typeof v === 'object' && v !== null).optional(),
  logger: z.custom<Logger>((v) => typeof v === 'object' && v !== null).optional(),
  capabilities: z.array(z.object({ name: z.string() })).min(1, 'capabilities must declare at least one capability'),
  concurrency: z.number().int().min(1, 'concurrency must be at least 1').default(10),
  startedReplyAfterMs: z.number().int().nonnegative().default(250),
  sessionTimeoutMs: z.number().int().positive().default(10_000),
  maxDeliveryAttempts: z.number().int().min(1, 'maxDeliveryAttempts must be at least 1').default(3),
  drainTimeoutMs: z.number().int().nonnegative().default(30_000),
  handleSignals: z.boolean().default(true),
  groupId: z.string().min(1).optional(),
  workerId: z.string().min(1).optional(),
  region: regionSchema.optional(),
  service: z.string().min(1).max(200).optional(),
  heartbeatIntervalMs: z.number().int().min(100, 'heartbeatIntervalMs must be at least 100').default(2_000),
  healthCheck: z.custom<() => unknown>((v) => typeof v === 'function').optional(),
  metricsPort: z.number().int().min(0, 'metricsPort must be a port (0: any free one)').max(65535).optional(),
  metricsHost: z.string().min(1).default('127.0.0.1'),
  processMetrics: z.boolean().default(true),
  checkTimeoutMs: z.number().int().positive().default(2_000),
});

export type WorkerConfig = z.output<typeof optionsSchema>;

/** The options checked once, with their defaults; a bad option throws WorkerConfigError naming it. */
export function workerConfig(options: WorkerOptions): WorkerConfig {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`);
    throw new WorkerConfigError(`invalid worker options: ${problems.join('; ')}`, { cause: parsed.error });
  }
  const names = options.capabilities.map((c) => c.name);
  if (new Set(names).size !== names.length)
    throw new WorkerConfigError(`capability declared twice: ${names.join(', ')}`);
  if (options.kafka === undefined && (options.brokers === undefined || options.brokers.length === 0)) {
    throw new WorkerConfigError('invalid worker options: give kafka or brokers');
  }
  return parsed.data;
}
