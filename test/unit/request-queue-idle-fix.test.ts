// kafkajs's request queue with sous's replacement of its check scheduling: an idle
// connection arms no timer, and waiting requests still go out (throttle, in-flight limit).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, it } from 'node:test';
import { applyRequestQueueIdleFix } from '../../src/kafka/request-queue-idle-fix.js';

interface Entry {
  readonly correlationId: number;
  readonly apiKey: number;
  readonly apiName: string;
  readonly apiVersion: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

interface Queue {
  readonly pending: readonly unknown[];
  readonly throttleCheckTimeoutId: unknown;
  push(request: { entry: Entry; expectResponse: boolean; sendRequest: () => void }): void;
  fulfillRequest(response: { correlationId: number; payload: null; size: number }): void;
  maybeThrottle(ms: number): void;
  checkPendingRequests(): void;
  destroy(): void;
}

const require = createRequire(import.meta.url);
const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as new (options: object) => Queue;

const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** Queues made by a test, destroyed after it (an armed timer would keep the process alive). */
const made: Queue[] = [];
afterEach(() => {
  for (const q of made.splice(0)) q.destroy();
});

function queue(maxInFlightRequests: number): { queue: Queue; checks: () => number } {
  const q = new RequestQueue({
    maxInFlightRequests,
    requestTimeout: 30_000,
    enforceRequestTimeout: false,
    clientId: 'test',
    broker: 'localhost:1',
    logger: quiet,
  });
  made.push(q);
  let checks = 0;
  const check = q.checkPendingRequests.bind(q);
  q.checkPendingRequests = () => {
    checks++;
    check();
  };
  return { queue: q, checks: () => checks };
}

let ids = 0;
function request(sent: number[], expectResponse: boolean) {
  const correlationId = ++ids;
  const entry: Entry = {
    correlationId,
    apiKey: 3,
    apiName: 'Metadata',
    apiVersion: 6,
    resolve: () => undefined,
    reject: () => undefined,
  };
  return { entry, expectResponse, sendRequest: () => sent.push(correlationId) };
}

describe('kafkajs request queue, idle fix', () => {
  it('applies to the installed kafkajs', () => {
    assert.equal(applyRequestQueueIdleFix(), true);
  });

  it('after a response with nothing waiting, arms no timer (kafkajs 2.2.4 re-armed one every millisecond)', async () => {
    applyRequestQueueIdleFix();
    const { queue: q, checks } = queue(1);
    const sent: number[] = [];
    const first = request(sent, true);
    q.push(first);
    q.fulfillRequest({ correlationId: first.entry.correlationId, payload: null, size: 0 });
    await sleep(100);
    assert.equal(q.throttleCheckTimeoutId, null);
    assert.equal(checks(), 1, 'the check the response made, and none after it');
  });

  it("sends a request that waits on the broker's throttle when the throttle ends", async () => {
    applyRequestQueueIdleFix();
    const { queue: q } = queue(10);
    const sent: number[] = [];
    q.maybeThrottle(40);
    const waiting = request(sent, false);
    q.push(waiting);
    assert.deepEqual(sent, [], 'held while throttled');
    await sleep(120);
    assert.deepEqual(sent, [waiting.entry.correlationId]);
    assert.equal(q.pending.length, 0);
  });

  it('sends a request that waits on the in-flight limit when the request before it is answered', () => {
    applyRequestQueueIdleFix();
    const { queue: q } = queue(1);
    const sent: number[] = [];
    const first = request(sent, true);
    const second = request(sent, true);
    q.push(first);
    q.push(second);
    assert.deepEqual(sent, [first.entry.correlationId]);
    q.fulfillRequest({ correlationId: first.entry.correlationId, payload: null, size: 0 });
    assert.deepEqual(sent, [first.entry.correlationId, second.entry.correlationId]);
  });
});
