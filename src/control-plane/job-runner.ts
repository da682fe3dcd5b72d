import { EventEmitter } from 'node:events';
import { run as runGraphile, type Runner, type Task, type WorkerEvents } from 'graphile-worker';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { pgConnectionConfig, type PostgresConnection } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { graphileLogger } from '../graphile-logger.js';
import type { Logger } from '../logger.js';
import type { ControlPlaneMetrics } from '../observability/control-plane-metrics.js';
import type { DecisionObserver } from '../observability/decision-observer.js';
import { unlockJobsOfDeadPools } from '../store/job-locks.js';
import type { ControlPlaneConfig } from './control-plane-options.js';
import { DEAD_LETTER_JOB_TASK, deadLetterJobTask, resumeStaleDeadLetterJobs } from './dead-letter-job.js';
import type { DecisionEnvironment } from './decision-environment.js';
import { JobPoolPresence } from './job-pool-presence.js';
import { RETENTION_TASK, retentionCrontab, retentionTask } from './retention.js';
import { SCHEDULE_CRONTAB, SCHEDULE_TASK, scheduleTask } from './schedules.js';
import { timerTask } from './timers.js';

/** What the job runner needs of its control plane. */
export interface JobRunnerDeps {
  readonly db: Kysely<Database>;
  readonly environment: DecisionEnvironment;
  readonly observer: DecisionObserver;
  readonly metrics: ControlPlaneMetrics;
  /** The control plane's PostgreSQL connection settings (TLS, password), for graphile-worker's pool. */
  readonly connection: PostgresConnection;
  readonly config: Pick<
    ControlPlaneConfig,
    'timerConcurrency' | 'retention' | 'retentionBatchSize' | 'deadJobPoolAfterMs'
  >;
  readonly log: Logger;
}

/** graphile-worker running the control plane's jobs; `stop` waits for the running ones. */
export interface JobRunner {
  stop(): Promise<void>;
}

/**
 * Runs the control plane's graphile-worker jobs: timers, dead-letter jobs, schedules and
 * retention (with their crontab), and hands on the jobs a dead control plane held locked.
 */
export async function startJobRunner({
  db,
  environment,
  observer,
  metrics,
  connection,
  config,
  log,
}: JobRunnerDeps): Promise<JobRunner> {
  /** A graphile task whose decisions are counted once its transaction commits. */
  const observedTask =
    (trigger: 'timer' | 'operator', task: Task): Task =>
    (payload, helpers) =>
      observer.run(trigger, async () => {
        await task(payload, helpers);
      });
  let presence: JobPoolPresence | undefined;
  // graphile-worker gets a pool with the same TLS and password as every other connection.
  const graphilePool = new pg.Pool({ ...pgConnectionConfig(connection), max: config.timerConcurrency + 2 });
  graphilePool.on('error', (error: Error) => {
    log.warn({ component: 'graphile-pool', reason: error.message }, 'idle PostgreSQL connection lost');
  });
  // A checked-out connection's error reaches graphile-worker through its query; this keeps
  // pg from throwing it at the process as well.
  graphilePool.on('connect', (client) => client.on('error', () => undefined));
  // The job pool's presence lock, taken as the pool is made (see job-pool-presence.ts).
  const poolEvents: WorkerEvents = new EventEmitter();
  poolEvents.on('pool:create', ({ workerPool }) => {
    if (presence !== undefined) return;
    presence = new JobPoolPresence(pgConnectionConfig(connection), workerPool.id, log);
    presence.start();
  });
  let runner: Runner;
  try {
    runner = await runGraphile({
      events: poolEvents,
      pgPool: graphilePool,
      concurrency: config.timerConcurrency,
      noHandleSignals: true,
      pollInterval: 1000,
      logger: graphileLogger,
      taskList: {
        [environment.timerTask]: observedTask('timer', timerTask(db, environment)),
        [DEAD_LETTER_JOB_TASK]: observedTask('operator', deadLetterJobTask(db, environment)),
        // Once a minute (one process per tick): DLT jobs whose worker crashed go on.
        [`${DEAD_LETTER_JOB_TASK}_sweep`]: async () => {
          await resumeStaleDeadLetterJobs(db);
        },
        [SCHEDULE_TASK]: scheduleTask(
          db,
          environment,
          (work) => observer.run('start', work),
          log,
          (report) => {
            for (const outcome of ['started', 'skipped', 'queued', 'missed', 'failed'] as const) {
              if (report[outcome] > 0) metrics.scheduleFires.inc({ outcome }, report[outcome]);
            }
          },
        ),
        [RETENTION_TASK]: retentionTask(
          db,
          { retention: config.retention, batchSize: config.retentionBatchSize },
          log,
          (report) => {
            const purged = metrics.retentionPurged;
            purged.inc({ table: 'execution' }, report.executions);
            purged.inc({ table: 'execution_event' }, report.events);
            purged.inc({ table: 'step' }, report.steps);
            purged.inc({ table: 'step_attempt' }, report.attempts);
            purged.inc({ table: 'foreach_item' }, report.foreachItems);
            purged.inc({ table: 'payload' }, report.payloads);
            purged.inc({ table: 'processed_message' }, report.processedMessages);
            purged.inc({ table: 'region_inbox' }, report.regionInbox);
          },
        ),
      },
      crontab: [
        `* * * * * ${DEAD_LETTER_JOB_TASK}_sweep`,
        SCHEDULE_CRONTAB,
        ...retentionCrontab(config.retention),
      ].join('\n'),
    });
  } catch (error) {
    await presence?.stop();
    await graphilePool.end();
    throw error;
  }
  const deadPoolSweep = setInterval(() => {
    unlockJobsOfDeadPools(db, config.deadJobPoolAfterMs / 1000)
      .then((pools) => {
        if (pools.length > 0) log.warn({ pools }, 'timer jobs of dead control planes handed on');
      })
      .catch((error: unknown) => {
        log.warn({ err: error }, 'could not check for timer jobs of dead control planes');
      });
  }, config.deadJobPoolAfterMs / 3);
  deadPoolSweep.unref();

  return {
    async stop() {
      clearInterval(deadPoolSweep);
      await runner.stop();
      await presence?.stop();
      await graphilePool.end();
    },
  };
}
