// The worker SDK: what a service needs to join sous.
export { defineCapability, type Capability, type CapabilityOptions } from './define-capability.js';
import { createWorker as createAnyWorker, type Worker } from './create-worker.js';
import type { WorkerOptions as AllWorkerOptions } from './options.js';
export type { Worker };
export type { Readiness, CheckResult } from '../observability/readiness.js';
/** Options of a worker (see each field for its default); the Kafka client stays inside the SDK. */
export type WorkerOptions = Omit<AllWorkerOptions, 'kafka'>;
/** A worker pulling step commands for its capabilities from Kafka (see `WorkerOptions`). */
export const createWorker: (options: WorkerOptions) => Worker = createAnyWorker;
export type { StepContext } from './context.js';
export {
  StepFailure,
  retryableError,
  terminalError,
  WorkerConfigError,
  StepCancelledError,
  CommandInvalidError,
  InputInvalidError,
  OutputInvalidError,
  PayloadUnavailableError,
  OutputNotStoredError,
} from './errors.js';
export { createCompletionClient, type CompletionClient } from './completion.js';
export {
  loadSecurityConfig,
  type SecurityConfig,
  type KafkaSecurityOptions,
  type KafkaTlsOptions,
  type KafkaSaslOptions,
  type KafkaSaslMechanism,
  type PostgresTlsOptions,
  type PostgresSslMode,
} from '../security/config.js';
export { KafkaAuthFailedError, KafkaTlsFailedError } from '../errors.js';
export { withExactlyOnce, installExactlyOnce } from './exactly-once.js';
export {
  postgresPayloadStore,
  DEFAULT_MAX_INLINE_OUTPUT_BYTES,
  type PayloadStore,
  type PostgresPayloadStoreOptions,
} from './payload-store.js';
