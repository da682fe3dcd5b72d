// The worker SDK: what a service needs to join sous (`import { ... } from 'sous/worker'`).
export { defineCapability, type Capability, type CapabilityOptions } from './define-capability.js';
export { createWorker, type Worker } from './create-worker.js';
export type { WorkerOptions } from './options.js';
export type { StepContext } from './context.js';
export {
  StepFailure,
  retryableError,
  terminalError,
  WorkerConfigError,
  CommandInvalidError,
  InputInvalidError,
  OutputInvalidError,
  OutputTooLargeError,
  PayloadUnavailableError,
  RegionMismatchError,
  DeadlineExceededError,
  WorkerStoppingError,
  RetriesExhausted,
  CompletionTokenInvalidError,
} from './errors.js';
export {
  createCompletionClient,
  type CompletionClient,
  type CompletionClientOptions,
} from './completion.js';
export { encodeCompletionToken, decodeCompletionToken, type CompletionTokenData } from './completion-token.js';
export { withExactlyOnce, installExactlyOnce } from './exactly-once.js';
export { postgresPayloadStore, type PayloadStore } from './payload-store.js';
