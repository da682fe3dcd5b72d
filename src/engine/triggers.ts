import type { StepError } from '../protocol/messages.js';

/** What makes the engine decide: a message, a timer, or a person's request. */
export type Trigger =
  | {
      readonly kind: 'start';
      readonly executionId: string;
      readonly recipe: string;
      readonly version: number;
      readonly input: unknown;
      readonly idempotencyKey?: string;
      readonly parent?: { readonly executionId: string; readonly stepKey: string };
    }
  | { readonly kind: 'step.started'; readonly stepExecutionId: string; readonly workerId: string }
  | { readonly kind: 'step.heartbeat'; readonly stepExecutionId: string; readonly progress?: unknown }
  | { readonly kind: 'step.completed'; readonly stepExecutionId: string; readonly output: unknown }
  | { readonly kind: 'step.failed'; readonly stepExecutionId: string; readonly error: StepError }
  | { readonly kind: 'timer'; readonly timerId: string }
  | { readonly kind: 'signal'; readonly name: string; readonly payload: unknown }
  | {
      readonly kind: 'child.finished';
      readonly childExecutionId: string;
      readonly status: 'completed' | 'failed' | 'cancelled';
      readonly output?: unknown;
      readonly error?: StepError;
    }
  | { readonly kind: 'cancel'; readonly reason?: string }
  | { readonly kind: 'pause' }
  | { readonly kind: 'resume' };
