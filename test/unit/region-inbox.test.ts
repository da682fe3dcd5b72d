import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { remoteRegionOf } from '../../src/regions/cross-region-route.js';
import { inboxAction, stepKeyOf } from '../../src/regions/region-inbox.js';
import type { StepCommand } from '../../src/protocol/messages.js';
import type { Route, StepNeeds } from '../../src/shards/route.js';

const executionId = '0195a1b2-0000-7000-8000-000000000001';
const command: StepCommand = {
  kind: 'step.command',
  executionId,
  stepExecutionId: '0195a1b2-0000-7000-8000-000000000002',
  stepId: 'b',
  capability: 'pay.charge',
  attempt: 1,
  input: { n: 1 },
  replyTopic: 'sous.replies',
  replyVia: { region: 'us-east', topic: 'sous.relay-us-east' },
  resident: true,
  idempotencyKey: `${executionId}/b`,
  region: 'eu-west',
  contract: { min: 2 },
};

describe("a region's inbox", () => {
  const asked: StepNeeds[] = [];
  const route =
    (answer: Route) =>
    (needs: StepNeeds): Route => {
      asked.push(needs);
      return answer;
    };

  it("routes a command by this region's registry: sent to the chosen topic, or held with the reason", () => {
    const sent = inboxAction(command, 'eu-west', route({ kind: 'send', topic: 'sous.cmd-eu-west_v2.pay.charge' }));
    assert.deepEqual(sent, { kind: 'dispatch', command, topic: 'sous.cmd-eu-west_v2.pay.charge' });
    assert.deepEqual(asked.at(-1), { capability: 'pay.charge', region: 'eu-west', contract: { min: 2 } });
    const held = inboxAction(command, 'eu-west', route({ kind: 'wait', code: 'no_shard', reason: 'none' }));
    assert.deepEqual(held, { kind: 'hold', command, code: 'no_shard', reason: 'none' });
  });

  it('passes a cancel on, and refuses with a code what must not run here', () => {
    const cancel = {
      kind: 'step.cancel',
      messageId: '0195a1b2-0000-7000-8000-000000000003',
      executionId,
      stepExecutionId: command.stepExecutionId,
      reason: 'the execution was cancelled',
    };
    const send = route({ kind: 'send', topic: 'x' });
    assert.equal(inboxAction(cancel, 'eu-west', send).kind, 'cancel');
    const refused = (payload: unknown) => {
      const action = inboxAction(payload, 'eu-west', send);
      return action.kind === 'refuse' ? action.code : action.kind;
    };
    assert.equal(refused({ kind: 'nonsense' }), 'not_a_command');
    assert.equal(refused({ ...command, region: 'ap-south' }), 'wrong_region');
    const { replyVia: _replyVia, ...noRoute } = command;
    assert.equal(refused(noRoute), 'no_reply_route');
  });

  it('names the step key from the idempotency key', () => {
    assert.equal(stepKeyOf({ ...command, idempotencyKey: `${executionId}/each[3]` }), 'each[3]');
    assert.equal(stepKeyOf({ ...command, idempotencyKey: 'other' }), 'b');
  });

  it('cancels a step where it runs: in a linked remote region, else here', () => {
    const remotes = new Set(['eu-west']);
    assert.equal(remoteRegionOf('us-east', remotes, 'eu-west'), 'eu-west');
    assert.equal(remoteRegionOf('us-east', remotes, 'us-east'), undefined);
    assert.equal(remoteRegionOf('us-east', remotes, 'ap-south'), undefined);
    assert.equal(remoteRegionOf(undefined, remotes, 'eu-west'), undefined);
    assert.equal(remoteRegionOf('us-east', remotes, undefined), undefined);
  });
});
