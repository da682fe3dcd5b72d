import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { EngineEvent } from '../engine/events.js';
import type { ExecutionStatus } from '../engine/state.js';
import { selectEvents } from '../store/events.js';
import { selectExecutions } from '../store/executions.js';
import { selectStepsOf } from '../store/steps.js';
import { ExecutionNotFoundError } from './errors.js';

export interface StepView {
  readonly stepKey: string;
  readonly stepId: string;
  readonly itemIndex: number | null;
  readonly compensation: boolean;
  readonly kind: string;
  readonly status: string;
  readonly attempts: number;
  readonly output: unknown;
  readonly error: unknown;
  readonly createdAt: Date;
  readonly finishedAt: Date | null;
}

export interface ExecutionView {
  readonly id: string;
  readonly recipe: string;
  readonly version: number;
  readonly status: ExecutionStatus;
  readonly input: unknown;
  readonly output: unknown;
  readonly error: unknown;
  readonly idempotencyKey: string | null;
  readonly parentExecutionId: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly finishedAt: Date | null;
  readonly steps: readonly StepView[];
}

/** One execution with its steps, as the state tables hold them. */
export async function getExecution(db: Kysely<Database>, executionId: string): Promise<ExecutionView> {
  const row = (await selectExecutions(db, [executionId]))[0];
  if (row === undefined) throw new ExecutionNotFoundError(`no execution ${executionId}`);
  const steps = await selectStepsOf(db, row.id);
  return {
    id: row.id,
    recipe: row.recipe_name,
    version: row.recipe_version,
    status: row.status,
    input: row.input,
    output: row.output,
    error: row.error,
    idempotencyKey: row.idempotency_key,
    parentExecutionId: row.parent_execution_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
    steps: steps.map((s) => ({
      stepKey: s.step_key,
      stepId: s.step_id,
      itemIndex: s.item_index,
      compensation: s.compensation,
      kind: s.kind,
      status: s.status,
      attempts: s.attempts,
      output: s.output,
      error: s.error,
      createdAt: s.created_at,
      finishedAt: s.finished_at,
    })),
  };
}

/** An execution's event log, oldest first. */
export async function getEvents(db: Kysely<Database>, executionId: string): Promise<EngineEvent[]> {
  return selectEvents(db, executionId);
}
