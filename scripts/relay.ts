// The relay of one region, until SIGTERM/SIGINT: copies what other regions send here
// (their `sous.relay-<region>` topic) into this region's cluster, exactly once, in order
// per key. Configured by SOUS_REGION, SOUS_KAFKA_BROKERS, SOUS_RELAY_SOURCES (and SOUS_KAFKA_SSL*, SOUS_KAFKA_SASL_*)
// (src/relay/config.ts; see the README's "Regions").
import { SousError } from '../src/errors.js';
import { logger } from '../src/logger.js';
import { loadRelayConfig } from '../src/relay/config.js';
import { startRelay } from '../src/relay/relay.js';

try {
  const config = loadRelayConfig(process.env);
  const relay = startRelay({ ...config, logger });
  await relay.ready;
  process.stdout.write(`relay ${config.sources.map((s) => s.region).join(',')} -> ${config.region} ready\n`);
  const stop = () => {
    relay.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ reason: error instanceof Error ? error.message : String(error) }, 'relay stop failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (error) {
  if (error instanceof SousError) {
    process.stderr.write(`relay: ${error.message}\n`);
    process.exit(1);
  }
  throw error;
}
