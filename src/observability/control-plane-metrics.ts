import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ObservedChanges } from './step-transitions.js';

/** Where a decision came from: bounded, one value per kind of trigger. */
export type DecisionTrigger = 'reply' | 'start' | 'timer' | 'operator';

/** Seconds: from a millisecond-fast decision to a stalled commit. */
const DECISION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds: steps run from milliseconds to hours. */
const STEP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
/** Replies per batch: up to the largest replyBatchSize worth setting. */
const BATCH_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500];

/**
 * The control plane's metrics, in a registry of their own (two control planes in one
 * process, as tests run them, never share a series). Names follow Prometheus's
 * conventions: `sous_` prefix, base units, `_total` on counters. Labels are bounded:
 * capability, status, trigger, outcome, error code, never an execution id.
 */
export class ControlPlaneMetrics {
  readonly registry = new Registry();

  readonly decisions = new Counter({
    name: 'sous_decisions_total',
    help: 'Triggers decided and committed (a reply applied, a start, a timer fired, an operator action).',
    labelNames: ['trigger'] as const,
    registers: [this.registry],
  });
  readonly decisionDuration = new Histogram({
    name: 'sous_decision_duration_seconds',
    help: 'Time to decide and commit one decision transaction (a batch of replies is one transaction).',
    labelNames: ['trigger'] as const,
    buckets: DECISION_BUCKETS,
    registers: [this.registry],
  });
  readonly replyBatchSize = new Histogram({
    name: 'sous_reply_batch_size',
    help: 'Replies decided together in one transaction.',
    buckets: BATCH_BUCKETS,
    registers: [this.registry],
  });
  readonly replies = new Counter({
    name: 'sous_replies_total',
    help: 'Replies consumed, by outcome: applied, duplicate (seen before), dead_lettered (could never apply).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly stepsScheduled = new Counter({
    name: 'sous_steps_scheduled_total',
    help: 'Step attempts dispatched (a command written to the outbox), by capability.',
    labelNames: ['capability'] as const,
    registers: [this.registry],
  });
  readonly stepsStarted = new Counter({
    name: 'sous_steps_started_total',
    help: 'Step attempts a worker reported started, by capability.',
    labelNames: ['capability'] as const,
    registers: [this.registry],
  });
  readonly stepsCompleted = new Counter({
    name: 'sous_steps_completed_total',
    help: 'Step attempts completed, by capability.',
    labelNames: ['capability'] as const,
    registers: [this.registry],
  });
  readonly stepsFailed = new Counter({
    name: 'sous_steps_failed_total',
    help: 'Step attempts failed (retried or not) or dead-lettered by their worker, by capability.',
    labelNames: ['capability'] as const,
    registers: [this.registry],
  });
  readonly stepDuration = new Histogram({
    name: 'sous_step_duration_seconds',
    help: "Time a step attempt ran on its worker (the worker's start to its final reply), by capability and outcome.",
    labelNames: ['capability', 'outcome'] as const,
    buckets: STEP_BUCKETS,
    registers: [this.registry],
  });
  readonly executionsStarted = new Counter({
    name: 'sous_executions_started_total',
    help: 'Executions started (sub-recipes included).',
    registers: [this.registry],
  });
  readonly executionsFinished = new Counter({
    name: 'sous_executions_finished_total',
    help: 'Executions finished, by status: completed, failed, cancelled or timed_out.',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly scheduleFires = new Counter({
    name: 'sous_schedule_fires_total',
    help: 'Fires of schedules decided, by outcome: started, skipped, queued, missed, failed.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly retentionPurged = new Counter({
    name: 'sous_retention_purged_rows_total',
    help:
      'Rows deleted by the retention purge, by table: execution, execution_event, step, step_attempt, ' +
      'foreach_item, payload, processed_message.',
    labelNames: ['table'] as const,
    registers: [this.registry],
  });

  // Sampled gauges (see ClusterSampler): read from PostgreSQL and Kafka every interval.
  readonly executions = new Gauge({
    name: 'sous_executions',
    help: 'Executions not finished, by status: running, paused, compensating (sampled).',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly commandBacklog = new Gauge({
    name: 'sous_command_backlog',
    help: "Kafka consumer lag of a capability's command topic, in offsets (transaction markers included) (sampled).",
    labelNames: ['capability'] as const,
    registers: [this.registry],
  });
  readonly commandsWaiting = new Gauge({
    name: 'sous_commands_waiting',
    help: 'Step attempts dispatched that no worker has reported started, by capability (sampled).',
    labelNames: ['capability'] as const,
    registers: [this.registry],
  });
  readonly commandOldestWait = new Gauge({
    name: 'sous_command_oldest_wait_seconds',
    help: 'Age of the oldest step attempt dispatched and not yet started, by capability (sampled).',
    labelNames: ['capability'] as const,
    registers: [this.registry],
  });
  readonly outboxAge = new Gauge({
    name: 'sous_outbox_age_seconds',
    help: 'Age of the oldest outbox write the connector has not yet delivered to Kafka, at most (sampled).',
    registers: [this.registry],
  });
  readonly slotLag = new Gauge({
    name: 'sous_outbox_slot_lag_bytes',
    help: "WAL bytes between the end of the WAL and the outbox replication slot's confirmed position (sampled).",
    registers: [this.registry],
  });
  readonly slotActive = new Gauge({
    name: 'sous_outbox_slot_active',
    help: 'Whether a connector is attached to the outbox replication slot: 1 or 0 (sampled; absent when there is no slot).',
    registers: [this.registry],
  });
  readonly deadLetters = new Gauge({
    name: 'sous_dead_letters',
    help: 'Dead letters waiting for an operator, by capability and error code (sampled).',
    labelNames: ['capability', 'error_code'] as const,
    registers: [this.registry],
  });
  readonly timersDue = new Gauge({
    name: 'sous_timers_due',
    help: 'Engine timers whose time has come and that no process is running yet (sampled).',
    registers: [this.registry],
  });
  readonly timersScheduled = new Gauge({
    name: 'sous_timers_scheduled',
    help: 'Engine timers set and not yet fired (sampled).',
    registers: [this.registry],
  });
  readonly sampleFailures = new Counter({
    name: 'sous_sample_failures_total',
    help: 'Sampled reads that failed or timed out, by source (their gauges keep their last value).',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly sampleLastSuccess = new Gauge({
    name: 'sous_sample_last_success_timestamp_seconds',
    help: 'When each sampled source was last read successfully (Unix seconds).',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  constructor(options: { processMetrics: boolean }) {
    // Process metrics (CPU, memory, event loop lag) are per process: one registry gets them.
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** One committed decision transaction: how long it took and how many triggers it decided. */
  decided(trigger: DecisionTrigger, seconds: number, triggers: number): void {
    this.decisionDuration.observe({ trigger }, seconds);
    if (triggers > 0) this.decisions.inc({ trigger }, triggers);
  }

  /** The attempt and execution changes of committed decisions, with run times where replies gave them. */
  changed(changes: ObservedChanges, runSeconds: ReadonlyMap<string, number> = new Map()): void {
    for (const t of changes.steps) {
      const labels = { capability: t.capability };
      switch (t.kind) {
        case 'scheduled':
          this.stepsScheduled.inc(labels);
          break;
        case 'started':
          this.stepsStarted.inc(labels);
          break;
        case 'completed':
        case 'failed': {
          (t.kind === 'completed' ? this.stepsCompleted : this.stepsFailed).inc(labels);
          const seconds = t.stepExecutionId === undefined ? undefined : runSeconds.get(t.stepExecutionId);
          if (seconds !== undefined) this.stepDuration.observe({ ...labels, outcome: t.kind }, seconds);
          break;
        }
      }
    }
    if (changes.executionsStarted > 0) this.executionsStarted.inc(changes.executionsStarted);
    for (const status of changes.executionsFinished) this.executionsFinished.inc({ status });
  }
}
