// The end offsets a compacted-topic reader starts from: a new topic's leader may not answer
// as leader yet, which is asked again; any other error is not.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Admin } from 'kafkajs';
import { topicEnds } from '../../src/kafka/topics.js';

type Offsets = Awaited<ReturnType<Admin['fetchTopicOffsets']>>;

/** An admin whose fetchTopicOffsets fails with `errors` in turn, then answers. */
function admin(errors: readonly { type: string }[]): { admin: Pick<Admin, 'fetchTopicOffsets'>; calls: () => number } {
  let calls = 0;
  const answer: Offsets = [{ partition: 0, offset: '7', high: '7', low: '0' }];
  return {
    admin: {
      fetchTopicOffsets: (): Promise<Offsets> => {
        const error = errors[calls++];
        return error === undefined
          ? Promise.resolve(answer)
          : Promise.reject(Object.assign(new Error(error.type), error));
      },
    },
    calls: () => calls,
  };
}

describe('topicEnds', () => {
  it('asks again while the leader settles, then gives each partition its end', async () => {
    const a = admin([{ type: 'NOT_LEADER_FOR_PARTITION' }, { type: 'LEADER_NOT_AVAILABLE' }]);
    assert.deepEqual(await topicEnds(a.admin, 'registry'), new Map([[0, 7n]]));
    assert.equal(a.calls(), 3);
  });

  it('gives any other error back at once', async () => {
    const a = admin([{ type: 'TOPIC_AUTHORIZATION_FAILED' }]);
    await assert.rejects(topicEnds(a.admin, 'registry'), /TOPIC_AUTHORIZATION_FAILED/);
    assert.equal(a.calls(), 1);
  });

  it('gives the error back when the leader has not settled in time', async () => {
    const a = admin(Array.from({ length: 50 }, () => ({ type: 'NOT_LEADER_FOR_PARTITION' })));
    await assert.rejects(topicEnds(a.admin, 'registry', 200), /NOT_LEADER_FOR_PARTITION/);
    assert.ok(a.calls() >= 2 && a.calls() < 10, `asked ${a.calls()} times`);
  });
});
