import type { ColumnType, Generated } from 'kysely';

/*
 * Every table of the sous schema, as the migrations create it: columns are typed here
 * once, and src/store/ is the only code that names them. jsonb columns are written as
 * JSON text (the statements cast with ::jsonb) and read back parsed.
 */

export type Json = ColumnType<unknown, string, string>;
/** A timestamptz column: read as a Date, written as an ISO string (or a Date). */
export type Timestamp = ColumnType<Date, string | Date, string | Date>;
/** A bigint column: pg returns int8 as text, so it is read and written as text. */
export type Int8 = ColumnType<string, string | number, string | number>;

/** sous.outbox (0001_outbox.sql). */
export interface OutboxTable {
  id: string;
  aggregate_type: string;
  aggregate_id: string;
  event_type: string;
  topic: string;
  payload: Json;
  traceparent: string | null;
  correlation_id: string | null;
  idempotency_key: string | null;
  headers: Generated<Json>;
}

/** sous.recipe (0002_engine.sql): registered versions, immutable. */
export interface RecipeTable {
  name: string;
  version: number;
  checksum: string;
  plan: Json;
  source: string | null;
  created_at: Generated<Date>;
}

/** sous.execution (0002_engine.sql). */
export interface ExecutionTable {
  id: string;
  recipe_name: string;
  recipe_version: number;
  status: string;
  input: Json;
  output: Json | null;
  error: Json | null;
  idempotency_key: string | null;
  parent_execution_id: string | null;
  parent_step_key: string | null;
  traceparent: string | null;
  reply_topic: string;
  /** A snapshot: the state after event state_seq (0010_state_snapshots.sql). */
  state: Json;
  last_seq: number;
  /** NULL on rows written before 0010: their state is at last_seq. */
  state_seq: number | null;
  /** The decision batch that last wrote the row (the state cache's key). */
  written_by: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  finished_at: Timestamp | null;
}

/**
 * sous.execution_event: since 0023 a view, a row per event, of sous.execution_event_row
 * (events written before 0023, one per row, with these columns) and the batches.
 */
export interface ExecutionEventTable {
  execution_id: string;
  seq: number;
  type: string;
  data: Json;
  created_at: Timestamp;
}

/** sous.execution_event_batch (0023): the events one batch of decisions appended to one execution. */
export interface ExecutionEventBatchTable {
  execution_id: string;
  first_seq: number;
  last_seq: number;
  created_at: Timestamp;
  events: Json;
}

/** sous.step (0002_engine.sql). */
export interface StepTable {
  execution_id: string;
  step_key: string;
  step_id: string;
  item_index: number | null;
  compensation: boolean;
  kind: string;
  status: string;
  attempts: number;
  output: Json | null;
  error: Json | null;
  child_execution_id: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  finished_at: Timestamp | null;
  /** The current attempt (0022): its id and columns as sous.step_attempt shows them. */
  attempt_id: string | null;
  capability: string | null;
  region: string | null;
  attempt_status: string | null;
  worker_id: string | null;
  attempt_error: Json | null;
  scheduled_at: Timestamp | null;
  started_at: Timestamp | null;
  attempt_finished_at: Timestamp | null;
  last_heartbeat_at: Timestamp | null;
}

/**
 * sous.step_attempt: since 0022 a view of every attempt (sous.superseded_attempt and the
 * current attempt on each sous.step row); sous.superseded_attempt has the same columns.
 */
export interface StepAttemptTable {
  id: string;
  execution_id: string;
  step_key: string;
  attempt: number;
  capability: string;
  input: Json | null;
  region: string | null;
  status: string;
  worker_id: string | null;
  error: Json | null;
  scheduled_at: Timestamp;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
  last_heartbeat_at: Timestamp | null;
}

/** sous.processed_message (0002_engine.sql): replies already applied. */
export interface ProcessedMessageTable {
  message_id: string;
  execution_id: string | null;
  processed_at: Generated<Date>;
}

/** sous_payload.payload (0016_worker_payloads.sql; sous.payload before): claim-check payloads. */
export interface PayloadTable {
  id: string;
  execution_id: string | null;
  data: Json;
  bytes: number;
  created_at: Generated<Date>;
}

/** sous.foreach_item (0003_foreach_items.sql). */
export interface ForeachItemTable {
  execution_id: string;
  step_key: string;
  item_index: number;
  data: Json;
}

/** sous.api_token (0004_api.sql). */
export interface ApiTokenTable {
  id: string;
  name: string;
  role: string;
  token_hash: string;
  created_at: Generated<Date>;
  created_by: string | null;
  revoked_at: Timestamp | null;
  last_used_at: Timestamp | null;
}

/** sous.audit_log (0004_api.sql): append-only. */
export interface AuditLogTable {
  id: Generated<Int8>;
  at: Generated<Date>;
  token_id: string | null;
  actor: string;
  role: string | null;
  operation: string;
  arguments: Json;
  outcome: string;
  error_code: string | null;
}

/** sous.dead_letter (0004_api.sql). */
export interface DeadLetterTable {
  id: string;
  dlt_topic: string;
  dlt_partition: number;
  dlt_offset: Int8;
  original_topic: string;
  original_partition: number | null;
  original_offset: Int8 | null;
  message_key: string | null;
  headers: Json;
  payload: Json | null;
  payload_text: string | null;
  error_class: string;
  error_code: string;
  error_message: string;
  error_stack: string | null;
  consumer_group: string | null;
  attempts: number | null;
  failed_at: Timestamp | null;
  capability: string | null;
  execution_id: string | null;
  step_key: string | null;
  step_execution_id: string | null;
  idempotency_key: string | null;
  status: Generated<string>;
  ingested_at: Generated<Date>;
  resolved_at: Timestamp | null;
  resolved_by: string | null;
  reprocess_count: Generated<number>;
  outcome: Json | null;
}

/** sous.schedule (0015_schedules.sql): recipes started on a cron schedule. */
export interface ScheduleTable {
  id: string;
  name: string;
  recipe_name: string;
  recipe_version: number | null;
  cron: string;
  time_zone: string;
  input: Json;
  overlap: string;
  missed_runs: string;
  next_fire_at: Timestamp;
  queued_fire_at: Timestamp | null;
  last_execution_id: string | null;
  paused_at: Timestamp | null;
  created_by: string;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** sous.schedule_run (0015_schedules.sql): what became of each fire time. */
export interface ScheduleRunTable {
  schedule_id: string;
  fire_time: Timestamp;
  outcome: string;
  catch_up: Generated<boolean>;
  execution_id: string | null;
  error: Json | null;
  decided_at: Generated<Date>;
}

/** Tables of the sous schema, for Kysely. */
/** sous.shard (0013_shards.sql): the control planes' mirror of the shard registry. */
export interface ShardTable {
  shard_id: string;
  service: string;
  instance: string;
  incarnation: string;
  region: string | null;
  capabilities: Json;
  health: 'healthy' | 'degraded' | 'draining' | 'gone';
  reason: string | null;
  in_flight: number;
  concurrency: number;
  heartbeat_interval_ms: number;
  first_seen_at: Timestamp;
  last_heartbeat_at: Timestamp;
  gone_at: Timestamp | null;
  drain_requested_at: Timestamp | null;
  drain_requested_by: string | null;
  updated_at: Generated<Date>;
}

/** sous.waiting_command (0013_shards.sql): commands no live shard can take yet. */
export interface WaitingCommandTable {
  id: string;
  execution_id: string;
  step_key: string;
  capability: string;
  region: string | null;
  contract_min: number | null;
  contract_max: number | null;
  reason_code: string;
  reason: string;
  since: Generated<Date>;
  aggregate_type: string;
  aggregate_id: string;
  event_type: string;
  payload: Json;
  headers: Json;
  traceparent: string | null;
  correlation_id: string | null;
  idempotency_key: string | null;
  /** 0019: set for a command of another region's execution, received through the relay. */
  origin_region: Generated<string | null>;
}

/** sous.region_inbox (0019_regions_routing.sql): commands and cancels received from other regions. */
export interface RegionInboxTable {
  id: string;
  execution_id: string;
  origin_region: string;
  state: 'dispatched' | 'held' | 'cancelled';
  received_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface Database {
  'sous.region_inbox': RegionInboxTable;
  'sous.shard': ShardTable;
  'sous.waiting_command': WaitingCommandTable;
  'sous.outbox': OutboxTable;
  'sous.recipe': RecipeTable;
  'sous.execution': ExecutionTable;
  'sous.execution_event': ExecutionEventTable;
  'sous.execution_event_row': ExecutionEventTable;
  'sous.execution_event_batch': ExecutionEventBatchTable;
  'sous.step': StepTable;
  'sous.step_attempt': StepAttemptTable;
  'sous.superseded_attempt': StepAttemptTable;
  'sous.processed_message': ProcessedMessageTable;
  'sous_payload.payload': PayloadTable;
  'sous.foreach_item': ForeachItemTable;
  'sous.api_token': ApiTokenTable;
  'sous.audit_log': AuditLogTable;
  'sous.dead_letter': DeadLetterTable;
  'sous.schedule': ScheduleTable;
  'sous.schedule_run': ScheduleRunTable;
}
