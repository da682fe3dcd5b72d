import { OUTBOX_HEADERS } from '../kafka/outbox-record.js';
import type { DestinationRecord, SourceRecord } from '../kafka/transactional-copy.js';

/**
 * The envelope of a message that crosses regions: Kafka headers naming where it goes
 * (the seed's "postal address"). A message written through the outbox carries them in
 * its `sous-headers` JSON header (the outbox row's `headers` column, which the Debezium
 * outbox router places as one header); a message a worker produces itself (a reply)
 * carries them as plain headers. Either way the relay reads the same two names.
 */
export const RELAY_HEADERS = {
  targetRegion: 'sous-target-region',
  targetTopic: 'sous-target-topic',
  /** Set by the relay on arrival: the region the message came from. */
  relayedFrom: 'sous-relayed-from',
  /** Set on a dead-lettered message: why it could not be routed. */
  error: 'sous-relay-error',
} as const;

/** The one topic of a cluster holding what must go to `region`; nothing else leaves the region. */
export function relayTopicFor(region: string): string {
  return `sous.relay-${region}`;
}

export const RELAY_OFFSETS_TOPIC = 'sous.relay-offsets';
export const RELAY_DEAD_LETTER_TOPIC = 'sous.relay-dead-letters';

/** The routing headers to put on a message bound for `targetTopic` in `targetRegion`. */
export function routingHeaders(targetRegion: string, targetTopic: string): Record<string, string> {
  return { [RELAY_HEADERS.targetRegion]: targetRegion, [RELAY_HEADERS.targetTopic]: targetTopic };
}

/** Why a relayed message cannot be routed: a stable code. */
export type RelayRefusal = 'no_routing_headers' | 'wrong_region' | 'bad_target_topic' | 'unknown_target_topic';

// Kafka's topic name rule; a relay topic is never a target (a message never loops).
const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;

function extraHeaders(headers: Readonly<Record<string, string>>): Record<string, unknown> {
  const text = headers[OUTBOX_HEADERS.extra];
  if (text === undefined) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

/** Target region and topic from plain headers, else from the outbox's `sous-headers` JSON. */
export function routingOf(
  headers: Readonly<Record<string, string>>,
): { readonly region: string; readonly topic: string } | undefined {
  const extra = extraHeaders(headers);
  const pick = (name: string) => {
    const plain = headers[name];
    if (plain !== undefined) return plain;
    const inner = extra[name];
    return typeof inner === 'string' ? inner : undefined;
  };
  const region = pick(RELAY_HEADERS.targetRegion);
  const topic = pick(RELAY_HEADERS.targetTopic);
  return region === undefined || topic === undefined ? undefined : { region, topic };
}

/**
 * Where the relay of `destinationRegion` puts a record read from `sourceRegion`'s relay
 * topic (pure): the target topic named by its headers, key, value and other headers as
 * they were, plus where it came from. A record it cannot route goes to the dead-letter
 * topic with the reason, so one bad record never stops the partition behind it. A target
 * topic the destination does not have (`exists`) is one of those: the relay creates no
 * topic it was not told of (a typo must not create topics, and auto-creation is off),
 * and a record waiting for a topic nobody may ever create would stall its partition.
 */
export function relayDestination(
  record: SourceRecord,
  sourceRegion: string,
  destinationRegion: string,
  exists: (topic: string) => boolean = () => true,
): DestinationRecord & { readonly refused?: RelayRefusal } {
  const routing = routingOf(record.headers);
  const headers: Record<string, string> = { [RELAY_HEADERS.relayedFrom]: sourceRegion };
  for (const [name, value] of Object.entries(record.headers)) {
    if (name !== RELAY_HEADERS.targetRegion && name !== RELAY_HEADERS.targetTopic) headers[name] = value;
  }
  let refused: RelayRefusal | undefined;
  if (routing === undefined) refused = 'no_routing_headers';
  else if (routing.region !== destinationRegion) refused = 'wrong_region';
  else if (!TOPIC.test(routing.topic) || routing.topic.startsWith('sous.relay-')) refused = 'bad_target_topic';
  else if (!exists(routing.topic)) refused = 'unknown_target_topic';
  if (refused !== undefined || routing === undefined) {
    const why = refused ?? 'no_routing_headers';
    return {
      topic: RELAY_DEAD_LETTER_TOPIC,
      key: record.key,
      value: record.value,
      headers: {
        ...record.headers,
        [RELAY_HEADERS.relayedFrom]: sourceRegion,
        [RELAY_HEADERS.error]: `${why} (${record.topic}/${record.partition}@${record.offset}${
          why === 'unknown_target_topic' && routing !== undefined ? ` to ${routing.topic}` : ''
        })`,
      },
      refused: why,
    };
  }
  return { topic: routing.topic, key: record.key, value: record.value, headers };
}
