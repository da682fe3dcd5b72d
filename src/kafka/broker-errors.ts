/*
 * Telling a broker that cannot be reached (wait and try again: nothing is wrong with the
 * record) from a record the cluster refuses (unknown topic, too large, not authorised).
 * kafkajs error names and flags are known only here, under src/kafka/.
 */

const UNREACHABLE = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSLockTimeout',
]);

/** Protocol errors a healthy cluster returns for a while during a leader change or restart. */
const TRANSIENT_TYPES = new Set([
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_FOR_PARTITION',
  'NOT_LEADER_OR_FOLLOWER',
  'REQUEST_TIMED_OUT',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'NETWORK_EXCEPTION',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'COORDINATOR_LOAD_IN_PROGRESS',
]);

/**
 * True when the error (or an error it was caused by) says the cluster is unreachable or
 * briefly unavailable, rather than that it refuses this particular record.
 */
export function isBrokerUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (typeof current === 'object' && current !== null && !seen.has(current)) {
    seen.add(current);
    const { name, type } = current as { name?: unknown; type?: unknown };
    if (typeof name === 'string' && UNREACHABLE.has(name)) return true;
    if (typeof type === 'string' && TRANSIENT_TYPES.has(type)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}
