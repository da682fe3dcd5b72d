import { z } from 'zod';
import { integerVariable, parseEnvironment } from './env.js';
import { ConfigInvalidError } from './errors.js';

/** Settings of a sous process read from the environment, validated once at start. */
export interface EnvironmentConfig {
  /** SOUS_DATABASE_URL: PostgreSQL of the control plane. */
  readonly databaseUrl: string;
  /** SOUS_KAFKA_BROKERS: comma-separated host:port list. */
  readonly brokers: readonly string[];
  /** SOUS_REPLY_TOPIC. @default 'sous.replies' */
  readonly replyTopic: string;
  /** SOUS_CONTROL_PLANE_GROUP. @default 'sous-control-plane' */
  readonly groupId: string;
  /** SOUS_REPLY_BATCH_SIZE: replies decided in one transaction. @default 50 */
  readonly replyBatchSize: number;
  /** SOUS_REPLY_CONCURRENCY: reply partitions decided at once. @default 4 */
  readonly partitionsConsumedConcurrently: number;
  /** SOUS_PG_POOL_SIZE: PostgreSQL connections of the process. @default 10 */
  readonly poolSize: number;
}

const positiveInt = (name: string, fallback: number) =>
  integerVariable(fallback, {
    min: 1,
    notANumber: `${name} must be a whole number`,
    notWhole: `${name} must be a whole number`,
    outOfRange: `${name} must be at least 1`,
  });

const schema = z.object({
  SOUS_DATABASE_URL: z
    .string({ error: 'SOUS_DATABASE_URL is required (postgres://user@host:port/db)' })
    .regex(/^postgres(ql)?:\/\//, 'SOUS_DATABASE_URL must start with postgres://'),
  SOUS_KAFKA_BROKERS: z
    .string({ error: 'SOUS_KAFKA_BROKERS is required (host:port[,host:port])' })
    .transform((s) => s.split(',').map((b) => b.trim()))
    .pipe(z.array(z.string().regex(/^[^:\s]+:\d+$/, 'SOUS_KAFKA_BROKERS entries must be host:port')).min(1)),
  SOUS_REPLY_TOPIC: z.string().min(1).default('sous.replies'),
  SOUS_CONTROL_PLANE_GROUP: z.string().min(1).default('sous-control-plane'),
  SOUS_REPLY_BATCH_SIZE: positiveInt('SOUS_REPLY_BATCH_SIZE', 50),
  SOUS_REPLY_CONCURRENCY: positiveInt('SOUS_REPLY_CONCURRENCY', 4),
  SOUS_PG_POOL_SIZE: positiveInt('SOUS_PG_POOL_SIZE', 10),
});

export function loadEnvironmentConfig(env: NodeJS.ProcessEnv = process.env): EnvironmentConfig {
  const e = parseEnvironment(
    schema,
    env,
    'invalid configuration',
    (message, options) => new ConfigInvalidError(message, options),
  );
  return {
    databaseUrl: e.SOUS_DATABASE_URL,
    brokers: e.SOUS_KAFKA_BROKERS,
    replyTopic: e.SOUS_REPLY_TOPIC,
    groupId: e.SOUS_CONTROL_PLANE_GROUP,
    replyBatchSize: e.SOUS_REPLY_BATCH_SIZE,
    partitionsConsumedConcurrently: e.SOUS_REPLY_CONCURRENCY,
    poolSize: e.SOUS_PG_POOL_SIZE,
  };
}
