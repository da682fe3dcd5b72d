/*
 * Dead letters, split along their seams: the Kafka ingest (dead-letter-ingest.ts), the
 * mapping of a DLT record to a row (dead-letter-record.ts), storage (store/dead-letters.ts)
 * and the operator actions (dead-letter-actions.ts). This module names them in one place.
 */
export type { DeadLetterRow } from '../store/dead-letters.js';
export { deadLetterRow } from './dead-letter-record.js';
export {
  runDeadLetterIngest,
  storeDeadLetter,
  type DeadLetterIngest,
  type DeadLetterIngestOptions,
} from './dead-letter-ingest.js';
export {
  DeadLetterNotReprocessableError,
  discardDeadLetters,
  reprocessDeadLetters,
  type DeadLetterSelection,
  type ReprocessOutcome,
} from './dead-letter-actions.js';
