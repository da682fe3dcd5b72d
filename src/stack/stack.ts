import { createDatabase } from '../db/database.js';
import { migrateAll } from '../db/migrate.js';
import { resolveArtifacts } from './artifacts.js';
import { databaseUrl, type StackConfig } from './config.js';
import { connectPid, startConnect, stopConnect } from './connect.js';
import { kafkaPid, requireJava, startKafka, stopKafka } from './kafka.js';
import { assertPortFree } from './process.js';
import { postgresPid, startPostgres, stopPostgres } from './postgres.js';

export type Log = (line: string) => void;

/** Applies sous's (and graphile-worker's) migrations to the stack's database. */
export async function migrateStack(config: StackConfig): Promise<string[]> {
  const db = createDatabase({ connectionString: databaseUrl(config), poolSize: 1, applicationName: 'sous-migrate' });
  try {
    return await migrateAll(db, databaseUrl(config));
  } finally {
    await db.destroy();
  }
}

/**
 * Brings every part up in dependency order, skipping parts already running, and waits
 * until each is healthy: PostgreSQL (+ migrations), Kafka, Kafka Connect (+ connector).
 */
export async function stackUp(config: StackConfig, log: Log): Promise<void> {
  // Preflight: everything a person must fix is reported before anything starts.
  requireJava();
  const artifacts = resolveArtifacts(config, log);
  if (postgresPid(config) === undefined) await assertPortFree(config.pgPort, 'SOUS_PG_PORT', 'PostgreSQL');
  if (kafkaPid(config) === undefined) {
    await assertPortFree(config.kafkaPort, 'SOUS_KAFKA_PORT', 'the Kafka broker');
    await assertPortFree(config.kafkaControllerPort, 'SOUS_KAFKA_CONTROLLER_PORT', 'the KRaft controller');
  }
  if (connectPid(config) === undefined) await assertPortFree(config.connectPort, 'SOUS_CONNECT_PORT', 'Kafka Connect');
  await startPostgres(config, log);
  const applied = await migrateStack(config);
  if (applied.length > 0) log(`migrations applied: ${applied.join(', ')}`);
  await startKafka(config, artifacts, log);
  await startConnect(config, artifacts, log);
}

/** Stops every part in reverse order; safe when some or all are already stopped. */
export async function stackDown(config: StackConfig, log: Log): Promise<void> {
  if (await stopConnect(config)) log('connect    stopped');
  if (await stopKafka(config)) log('kafka      stopped');
  if (stopPostgres(config)) log('postgres   stopped');
}

export function stackStatus(config: StackConfig): Record<string, number | undefined> {
  return { postgres: postgresPid(config), kafka: kafkaPid(config), connect: connectPid(config) };
}

export { resolveArtifacts, startPostgres, stopPostgres, startKafka, stopKafka, startConnect, stopConnect };
