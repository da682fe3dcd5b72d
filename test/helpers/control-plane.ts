import { setTimeout as sleep } from 'node:timers/promises';
import {
  createControlPlane,
  type ControlPlane,
  type ControlPlaneOptions,
} from '../../src/control-plane/control-plane.js';
import { getExecution, type ExecutionView } from '../../src/control-plane/queries.js';
import { databaseUrl, kafkaBrokers } from '../../src/stack/config.js';
import { stackConfig, uniqueName } from './stack.js';

/**
 * A control plane of the test's own: its own reply topic and consumer groups. It ingests
 * no dead letters unless the test names its own dead-letter topics (`deadLetterTopicPattern`).
 */
export async function startTestControlPlane(
  overrides: Partial<ControlPlaneOptions> = {},
): Promise<ControlPlane & { replyTopic: string }> {
  const replyTopic = uniqueName('test.replies');
  const controlPlane = createControlPlane({
    databaseUrl: databaseUrl(stackConfig),
    brokers: kafkaBrokers(stackConfig),
    replyTopic,
    groupId: uniqueName('test-control-plane'),
    poolSize: 5,
    ingestDeadLetters: false,
    deadLetterGroupId: uniqueName('test-dead-letters'),
    ...overrides,
  });
  await controlPlane.start();
  return Object.assign(controlPlane, { replyTopic });
}

/** Polls an execution until `done` holds; fails with its last view after `timeoutMs`. */
export async function waitForExecution(
  controlPlane: ControlPlane,
  executionId: string,
  done: (view: ExecutionView) => boolean = (v) => ['completed', 'failed', 'cancelled', 'timed_out'].includes(v.status),
  timeoutMs = 60_000,
): Promise<ExecutionView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await getExecution(controlPlane.db, executionId);
    if (done(view)) return view;
    if (Date.now() > deadline) {
      throw new Error(
        `execution ${executionId} still ${view.status} after ${timeoutMs} ms: ${JSON.stringify(view.steps.map((s) => `${s.stepKey}=${s.status}`))}`,
      );
    }
    await sleep(50);
  }
}
