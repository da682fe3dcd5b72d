import { createKafka } from '../kafka/kafka-client.js';
import type { KafkaSecurityOptions } from '../security/config.js';
import { runTransactionalCopy, type TransactionalCopy } from '../kafka/transactional-copy.js';
import { logger as rootLogger, type Logger } from '../logger.js';
import { regionInboxTopic } from '../regions/region-inbox.js';
import {
  RELAY_DEAD_LETTER_TOPIC,
  RELAY_HEADERS,
  RELAY_OFFSETS_TOPIC,
  relayDestination,
  relayTopicFor,
} from './routing.js';

export interface RelaySource {
  readonly region: string;
  readonly brokers: readonly string[];
  /** TLS and SASL to that cluster. @default the relay's `kafkaSecurity` */
  readonly kafkaSecurity?: KafkaSecurityOptions;
}

export interface RelayOptions {
  /** The region this relay serves: it produces into this region's cluster only. */
  readonly region: string;
  /** Brokers of this region's cluster (local: the relay produces here). */
  readonly brokers: readonly string[];
  /** TLS and SASL to this region's cluster (and to sources naming none). @default plaintext */
  readonly kafkaSecurity?: KafkaSecurityOptions;
  /** The other regions' clusters (remote: the relay only consumes there). */
  readonly sources: readonly RelaySource[];
  /** Topics created in the destination before copying (targets may otherwise not exist yet). */
  readonly destinationTopics?: readonly string[];
  /** Most bytes fetched per source partition and request, so per transaction. @default 1048576 */
  readonly fetchMaxBytes?: number;
  /** Called after each committed transaction with how many records it copied. */
  readonly onCopied?: (count: number) => void;
  readonly logger?: Logger;
}

export interface Relay {
  readonly ready: Promise<void>;
  stop(): Promise<void>;
}

/**
 * The relay of one region: for each other region, consumes that cluster's
 * `sous.relay-<this region>` (remote: consumer traffic is the cheap kind across a long
 * link) and produces into this region's cluster (local), one Kafka transaction per batch
 * with the source position in it (src/kafka/transactional-copy.ts). Only that one topic
 * is read, and only messages bound here are in it: nothing else crosses.
 */
export function startRelay(options: RelayOptions): Relay {
  const log = (options.logger ?? rootLogger).child({ component: 'relay', region: options.region });
  const destination = createKafka({
    brokers: options.brokers,
    clientId: `sous-relay-${options.region}`,
    logger: log,
    ...(options.kafkaSecurity === undefined ? {} : { security: options.kafkaSecurity }),
  });
  const copies: Promise<TransactionalCopy>[] = options.sources.map((source) => {
    const sourceKafka = createKafka({
      brokers: source.brokers,
      clientId: `sous-relay-${source.region}-to-${options.region}`,
      logger: log,
      ...((source.kafkaSecurity ?? options.kafkaSecurity) === undefined
        ? {}
        : { security: source.kafkaSecurity ?? options.kafkaSecurity }),
    });
    return runTransactionalCopy({
      source: sourceKafka,
      destination,
      sourceTopics: [relayTopicFor(options.region)],
      groupId: `sous-relay.${source.region}.to.${options.region}`,
      transactionalId: `sous-relay.${source.region}.to.${options.region}`,
      offsetsTopic: RELAY_OFFSETS_TOPIC,
      positionPrefix: source.region,
      // The region inbox is where other regions' commands land: it must exist even while
      // this region's control plane is down, so the commands wait there rather than in
      // the dead-letter topic.
      destinationTopics: [
        RELAY_DEAD_LETTER_TOPIC,
        regionInboxTopic(options.region),
        ...(options.destinationTopics ?? []),
      ],
      route: (record, exists) => relayDestination(record, source.region, options.region, exists),
      ...(options.fetchMaxBytes === undefined ? {} : { fetchMaxBytes: options.fetchMaxBytes }),
      onCommitted: (records) => {
        for (const r of records) {
          if (r.topic === RELAY_DEAD_LETTER_TOPIC)
            log.warn({ reason: r.headers[RELAY_HEADERS.error] }, 'relayed message dead-lettered');
        }
        options.onCopied?.(records.length);
      },
      logger: log,
    });
  });
  const all = Promise.all(copies);
  return {
    ready: all.then(async (cs) => {
      await Promise.all(cs.map((c) => c.ready));
    }),
    async stop() {
      const cs = await all;
      await Promise.all(cs.map((c) => c.stop()));
    },
  };
}
