// The short form of `npm run chaos`: executions of every construct (sequence, forEach,
// parallel, a compensating saga, a timer, a signal wait) while every kind of fault lands once:
// a worker, one of two control planes, Kafka Connect and the broker SIGKILLed, PostgreSQL
// crashed, the broker unreachable on loopback. Every execution must end as its recipe must,
// each side effect exactly once, nothing left in the outbox or the replication slot, the
// event log equal to the state tables, and no dead letter.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALL_FAULTS, runChaos } from '../../chaos/chaos.js';
import { stackConfig } from '../helpers/stack.js';

describe('chaos (short form)', () => {
  it('loses nothing and applies nothing twice through crashes of every part', { timeout: 900_000 }, async () => {
    const lines: string[] = [];
    const report = await runChaos({
      stack: stackConfig,
      executions: 60,
      faults: ALL_FAULTS.length,
      inFlight: 30,
      forEachItems: 5,
      timeoutMs: 240_000,
      log: (line) => lines.push(line),
    });
    const context = `${report.problems.join('\n')}\n${lines.join('\n')}`;
    assert.deepEqual(report.faults.map((f) => f.fault).sort(), [...ALL_FAULTS].sort(), 'every fault was injected once');
    assert.ok(report.executions >= 60, context);
    assert.deepEqual(
      Object.keys(report.statuses).sort(),
      ['forEach', 'parallel', 'saga', 'sequence', 'signal', 'timer'],
      'every construct ran',
    );
    assert.equal(report.wrongEnd, 0, context);
    assert.equal(report.duplicatedEffects, 0, context);
    assert.equal(report.effects, report.expectedEffects, context);
    assert.equal(report.outboxRows, 0, context);
    assert.equal(report.disagreements, 0, context);
    assert.equal(report.deadLetters, 0, context);
    assert.ok(report.ok, context);
  });
});
