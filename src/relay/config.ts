import { ConfigInvalidError } from '../errors.js';
import { loadSecurityConfig, type KafkaSecurityOptions } from '../security/config.js';
import { regionSchema } from '../protocol/shards.js';
import type { RelaySource } from './relay.js';

/** The relay process's settings (scripts/relay.ts). */
export interface RelayConfig {
  /** SOUS_REGION: the region the relay serves (it produces into this region's cluster). Required. */
  readonly region: string;
  /** SOUS_KAFKA_BROKERS: this region's brokers, comma-separated. @default 127.0.0.1:19092 */
  readonly brokers: string[];
  /** SOUS_RELAY_SOURCES: `<region>=<host:port>[|<host:port>...]`, comma-separated: the other regions' clusters. Required. */
  readonly sources: RelaySource[];
  /** SOUS_RELAY_FETCH_MAX_BYTES: most bytes per source partition fetch, so per transaction. @default 1048576 */
  readonly fetchMaxBytes: number;
  /**
   * SOUS_KAFKA_SSL*, SOUS_KAFKA_SASL_* (loadSecurityConfig): TLS and SASL to this region's
   * cluster and the sources alike. @default plaintext
   */
  readonly kafkaSecurity: KafkaSecurityOptions;
}

const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;

function invalid(message: string): never {
  throw new ConfigInvalidError(`invalid relay setting: ${message}`);
}

/** Reads the relay's settings; a bad one throws ConfigInvalidError naming the variable. */
export function loadRelayConfig(env: NodeJS.ProcessEnv): RelayConfig {
  const region = env.SOUS_REGION ?? '';
  if (region === '') invalid('SOUS_REGION is required: the region this relay produces into (e.g. eu-west)');
  if (!regionSchema.safeParse(region).success)
    invalid(`SOUS_REGION ${JSON.stringify(region)} is not a region name (lower-case letters, digits, dashes)`);
  const brokers = (env.SOUS_KAFKA_BROKERS ?? '127.0.0.1:19092').split(',').map((b) => b.trim());
  for (const b of brokers)
    if (!HOST_PORT.test(b)) invalid(`SOUS_KAFKA_BROKERS holds ${JSON.stringify(b)}, not host:port`);
  const text = env.SOUS_RELAY_SOURCES ?? '';
  if (text.trim() === '') invalid('SOUS_RELAY_SOURCES is required: e.g. us-east=10.0.0.5:9092');
  const sources = text.split(',').map((entry): RelaySource => {
    const [name, hosts] = entry.trim().split('=');
    if (name === undefined || hosts === undefined || !regionSchema.safeParse(name).success) {
      invalid(`SOUS_RELAY_SOURCES entry ${JSON.stringify(entry)} is not <region>=<host:port>`);
    }
    if (name === region) invalid(`SOUS_RELAY_SOURCES names ${region}, the relay's own region`);
    const list = hosts.split('|');
    for (const h of list)
      if (!HOST_PORT.test(h)) invalid(`SOUS_RELAY_SOURCES entry ${name} holds ${JSON.stringify(h)}, not host:port`);
    return { region: name, brokers: list };
  });
  if (new Set(sources.map((s) => s.region)).size !== sources.length) invalid('SOUS_RELAY_SOURCES names a region twice');
  const fetchText = env.SOUS_RELAY_FETCH_MAX_BYTES ?? '1048576';
  const fetchMaxBytes = Number(fetchText);
  if (!Number.isInteger(fetchMaxBytes) || fetchMaxBytes < 1024) {
    invalid(`SOUS_RELAY_FETCH_MAX_BYTES must be a whole number of at least 1024 (got ${JSON.stringify(fetchText)})`);
  }
  return { region, brokers, sources, fetchMaxBytes, kafkaSecurity: loadSecurityConfig(env).kafka };
}
