// The worker SDK: what a service needs to join sous.
export { defineCapability, type Capability, type CapabilityOptions } from './define-capability.js';
export { createWorker, type Worker, type WorkerOptions } from './create-worker.js';
export type { StepContext } from './context.js';
export {
  StepFailure,
  retryableError,
  terminalError,
  WorkerConfigError,
  CommandInvalidError,
  InputInvalidError,
  OutputInvalidError,
  PayloadUnavailableError,
} from './errors.js';
export { createCompletionClient, type CompletionClient } from './completion.js';
export { withExactlyOnce, installExactlyOnce } from './exactly-once.js';
export { postgresPayloadStore, type PayloadStore } from './payload-store.js';
