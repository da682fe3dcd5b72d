import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { DecisionObserver } from '../observability/decision-observer.js';
import type { RecipePlan } from '../recipe/plan.js';
import type { AuditHook } from '../store/audit.js';
import {
  discardDeadLetters,
  reprocessDeadLetters,
  type DeadLetterSelection,
  type ReprocessOutcome,
} from './dead-letters.js';
import type { DecisionEnvironment } from './decision-environment.js';
import {
  cancelExecution,
  pauseExecution,
  rerunFromStep,
  resumeExecution,
  retryStep,
  signalExecution,
  skipStep,
  startExecution,
  startExecutions,
  type StartOptions,
  type Started,
} from './executions.js';
import { registerRecipe, type RegisteredRecipe } from './recipes.js';
import {
  createSchedule,
  deleteSchedule,
  pauseSchedule,
  resumeSchedule,
  scheduleOf,
  type Schedule,
  type ScheduleDefinition,
} from './schedules.js';
import { requestShardControl, type ShardControlRequested } from './shard-control.js';
import type { ShardRegistry } from './shard-registry.js';

/**
 * What the control plane does that changes state: each is audited when the API asks
 * (`ControlPlane.audited`), in the transaction of the change it makes.
 */
export interface ControlPlaneActions {
  registerRecipe(plan: RecipePlan, source?: string): Promise<RegisteredRecipe>;
  startExecution(options: StartOptions): Promise<Started>;
  /**
   * Starts up to 10,000 executions in one transaction (all or none), results in the order
   * given; for a client that starts a batch of work at once.
   */
  startExecutions(starts: readonly StartOptions[]): Promise<Started[]>;
  cancelExecution(executionId: string, reason?: string): Promise<string>;
  pauseExecution(executionId: string): Promise<string>;
  resumeExecution(executionId: string): Promise<string>;
  signalExecution(executionId: string, name: string, payload?: unknown): Promise<string>;
  retryStep(executionId: string, stepKey: string): Promise<string>;
  skipStep(executionId: string, stepKey: string, output?: unknown): Promise<string>;
  rerunFromStep(executionId: string, stepId: string): Promise<string>;
  /** Publishes dead letters again (optionally with a replacement payload); a parked step resumes. */
  reprocessDeadLetters(selection: DeadLetterSelection, actor: string, payload?: unknown): Promise<ReprocessOutcome[]>;
  discardDeadLetters(selection: DeadLetterSelection, actor: string): Promise<string[]>;
  /** Asks a live shard to drain: no new commands, running ones finish; its queued work goes to the others. */
  drainShard(shardId: string, actor?: string): Promise<ShardControlRequested>;
  /** Asks a drained shard to take commands again. */
  resumeShard(shardId: string, actor?: string): Promise<ShardControlRequested>;
  /**
   * Starts `recipe` on a cron schedule (docs/schedules.md); the same definition under the
   * same name again returns the first (`created: false`).
   */
  createSchedule(definition: ScheduleDefinition, actor?: string): Promise<{ schedule: Schedule; created: boolean }>;
  /** Starts nothing more until resumed. */
  pauseSchedule(id: string): Promise<Schedule>;
  /** Runs again from the next fire (fires while paused are not run). */
  resumeSchedule(id: string): Promise<Schedule>;
  /** Deletes a schedule and its run history; false when there was none. */
  deleteSchedule(id: string): Promise<boolean>;
}

/** What the actions need of their control plane. */
export interface ActionDeps {
  readonly db: Kysely<Database>;
  readonly environment: DecisionEnvironment;
  readonly observer: DecisionObserver;
  readonly registry: ShardRegistry;
  /** The control plane's own region: recipes registered here are checked against it. */
  readonly region: string | undefined;
}

/** The actions, each writing `audit` (if given) in the transaction of its change. */
export function controlPlaneActions(
  { db, environment, observer, registry, region }: ActionDeps,
  audit?: AuditHook,
): ControlPlaneActions {
  return {
    registerRecipe: (plan, source) => registerRecipe(db, plan, source, region, audit),
    startExecution: (start) => observer.run('start', () => startExecution(db, environment, start, audit)),
    startExecutions: (starts) =>
      observer.run('start', () => startExecutions(db, environment, starts, audit), {
        triggers: (started) => started.length,
      }),
    cancelExecution: (id, reason) =>
      observer.run('operator', () => cancelExecution(db, environment, id, reason, audit)),
    pauseExecution: (id) => observer.run('operator', () => pauseExecution(db, environment, id, audit)),
    resumeExecution: (id) => observer.run('operator', () => resumeExecution(db, environment, id, audit)),
    signalExecution: (id, name, payload) =>
      observer.run('operator', () => signalExecution(db, environment, id, name, payload, audit)),
    retryStep: (id, stepKey) => observer.run('operator', () => retryStep(db, environment, id, stepKey, audit)),
    skipStep: (id, stepKey, output) =>
      observer.run('operator', () => skipStep(db, environment, id, stepKey, output, audit)),
    rerunFromStep: (id, stepId) => observer.run('operator', () => rerunFromStep(db, environment, id, stepId, audit)),
    reprocessDeadLetters: (selection, actor, payload) =>
      observer.run('operator', () => reprocessDeadLetters(db, environment, selection, actor, payload, audit)),
    discardDeadLetters: (selection, actor) => discardDeadLetters(db, selection, actor, audit),
    drainShard: (shardId, actor) =>
      requestShardControl(db, registry.get(shardId), shardId, 'drain', actor ?? null, audit),
    resumeShard: (shardId, actor) =>
      requestShardControl(db, registry.get(shardId), shardId, 'resume', actor ?? null, audit),
    createSchedule: async (definition, actor = 'application') => {
      const { schedule, created } = await createSchedule(db, environment, definition, actor, undefined, audit);
      return { schedule: scheduleOf(schedule), created };
    },
    pauseSchedule: async (id) => scheduleOf(await pauseSchedule(db, id, environment.now(), audit)),
    resumeSchedule: async (id) => scheduleOf(await resumeSchedule(db, id, environment.now(), audit)),
    deleteSchedule: (id) => deleteSchedule(db, id, audit),
  };
}
