import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

const STEP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/**
 * A worker's own view of its commands, by capability: what it received, how each
 * ended and how long its handler ran (the control plane counts the same steps from the
 * replies it applies; these add what only the worker sees: redeliveries, in-process
 * retries, dead letters it wrote, commands in hand). A registry per worker.
 */
export class WorkerMetrics {
  readonly registry = new Registry();

  readonly received = new Counter({
    name: 'sous_worker_commands_received_total',
    help: 'Command records taken from Kafka (redeliveries included), by capability.',
    labelNames: ['capability'] as const,
    registers: [this.registry],
  });
  readonly finished = new Counter({
    name: 'sous_worker_commands_finished_total',
    help: 'Commands that sent their final reply, by capability and outcome (completed or failed).',
    labelNames: ['capability', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'sous_worker_command_duration_seconds',
    help: "Time from a command's start on this worker to its final reply, by capability and outcome.",
    labelNames: ['capability', 'outcome'] as const,
    buckets: STEP_BUCKETS,
    registers: [this.registry],
  });
  readonly deadLettered = new Counter({
    name: 'sous_worker_dead_letters_total',
    help: 'Command records this worker put in a dead-letter topic, by capability and error code.',
    labelNames: ['capability', 'error_code'] as const,
    registers: [this.registry],
  });
  readonly inFlight: Gauge;

  constructor(options: { processMetrics: boolean; inFlight: () => number }) {
    this.inFlight = new Gauge({
      name: 'sous_worker_commands_in_flight',
      help: 'Handlers running now.',
      registers: [this.registry],
      collect() {
        this.set(options.inFlight());
      },
    });
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }
}
