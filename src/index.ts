// The public surface of sous, exported by name. Services import `sous/worker`,
// recipe authors `sous/recipe`; applications and control-plane processes use this entry.
export {
  SousError,
  ConfigInvalidError,
  OutboxMessageInvalidError,
  OutboxNotInTransactionError,
  MalformedRecordError,
  MigrationFailedError,
  KafkaAuthFailedError,
  KafkaTlsFailedError,
  PostgresAuthFailedError,
  PostgresTlsFailedError,
} from './errors.js';
export {
  loadSecurityConfig,
  type SecurityConfig,
  type KafkaSecurityOptions,
  type KafkaTlsOptions,
  type KafkaSaslOptions,
  type KafkaSaslMechanism,
  type PostgresTlsOptions,
  type PostgresSslMode,
} from './security/config.js';
export { redactConnectionString } from './security/redact.js';
export { loadEnvironmentConfig, type EnvironmentConfig } from './config.js';
import {
  createControlPlane as createWholeControlPlane,
  type ControlPlaneOptions,
  type PublicControlPlane,
} from './control-plane/control-plane.js';
export type { ControlPlaneOptions };
/** A control plane: drives executions; its database handle and decision environment stay inside. */
export type ControlPlane = PublicControlPlane;
/** Makes a control plane (options are checked at once; `start()` connects). */
export const createControlPlane: (options: ControlPlaneOptions) => ControlPlane = createWholeControlPlane;
export type { StartOptions, Started } from './control-plane/executions.js';
export {
  ScheduleInvalidError,
  ScheduleExistsError,
  ScheduleNotFoundError,
  type Schedule,
  type ScheduleDefinition,
} from './control-plane/schedules.js';
export type { OverlapPolicy, MissedRunsPolicy } from './control-plane/schedule-policy.js';
export type { Readiness, CheckResult } from './observability/readiness.js';
export {
  startTracing,
  tracingSettings,
  type Tracing,
  type TracingOptions,
  type TracingSettings,
} from './observability/tracing-sdk.js';
export type { RegisteredRecipe } from './control-plane/recipes.js';
export type { CompensationPlanView } from './control-plane/compensation-plan.js';
export type { PlannedCompensation } from './engine/compensation.js';
export { getExecution, getEvents, type ExecutionView, type StepView } from './control-plane/queries.js';
export { rebuildExecution } from './control-plane/rebuild.js';
export {
  ExecutionNotFoundError,
  ExecutionFinishedError,
  InvalidStartError,
  RecipeNotFoundError,
  ReplyInvalidError,
  ShardNotFoundError,
} from './control-plane/errors.js';
export type { ShardControlRequested } from './control-plane/shard-control.js';
export type { LiveShard, ViewChange } from './shards/registry-view.js';
export type { Route, StepNeeds, WaitCode } from './shards/route.js';
export {
  SHARD_REGISTRY_TOPIC,
  SHARD_CONTROL_TOPIC,
  commandTopicFor,
  shardAnnouncementSchema,
  shardControlSchema,
  type ShardAnnouncement,
  type ShardControl,
  type ShardHealth,
  type ContractRange,
} from './protocol/shards.js';
export type { ExecutionStatus } from './engine/state.js';
export type { EngineEvent, HandlerFailure } from './engine/events.js';
export { createDatabase, type DatabaseOptions } from './db/database.js';
export { migrate, migrateAll, SqlFileMigrationProvider, MIGRATIONS_FOLDER } from './db/migrate.js';
export type { Database, OutboxTable } from './db/schema.js';
export {
  writeOutbox,
  toOutboxRows,
  DEFAULT_MAX_PAYLOAD_BYTES,
  type OutboxRow,
  type WriteOutboxOptions,
} from './outbox/write-outbox.js';
export type { OutboxMessage } from './outbox/outbox-message.js';
export { createKafka, type KafkaClientOptions } from './kafka/kafka-client.js';
export { decodeOutboxRecord, OUTBOX_HEADERS, type OutboxRecord } from './kafka/outbox-record.js';
export { runOutboxConsumer, type OutboxConsumer, type OutboxConsumerOptions } from './kafka/outbox-consumer.js';
export { ensureTopics, type EnsureTopicsOptions } from './kafka/topics.js';
export {
  commandTopic,
  deadLetterTopic,
  REPLY_TOPIC,
  DLT_HEADERS,
  stepCommandSchema,
  stepReplySchema,
  type StepCommand,
  type StepReply,
  type StepError,
} from './protocol/messages.js';
export { ActionRefusedError } from './engine/action-refused.js';
export {
  DeadLetterNotReprocessableError,
  type DeadLetterSelection,
  type ReprocessOutcome,
} from './control-plane/dead-letters.js';
export { buildApi, type ApiOptions } from './api/app.js';
export { serveApi } from './api/serve.js';
export { createApiToken, revokeApiToken, ROLES, type Role, type Caller } from './api/auth.js';
export {
  UnauthenticatedError,
  ForbiddenError,
  InvalidArgumentError,
  QueryTooComplexError,
  TokenExistsError,
} from './api/errors.js';
