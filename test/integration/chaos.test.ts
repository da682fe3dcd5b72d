// The short form of `npm run chaos`: executions whose steps apply side effects exactly
// once, while a worker, the control plane, Kafka Connect and the broker are SIGKILLed and
// PostgreSQL is restarted; every execution must complete, no effect may be applied twice,
// nothing may be left in the outbox or the replication slot, and the event log must
// agree with the state tables.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ALL_FAULTS, runChaos } from '../../chaos/chaos.js';
import { stackConfig } from '../helpers/stack.js';

describe('chaos (short form)', () => {
  it('loses nothing and applies nothing twice through crashes of every part', { timeout: 900_000 }, async () => {
    const lines: string[] = [];
    const report = await runChaos({
      stack: stackConfig,
      executions: 40,
      steps: 2,
      faults: ALL_FAULTS,
      timeoutMs: 240_000,
      log: (line) => lines.push(line),
    });
    const context = `${report.problems.join('\n')}\n${lines.join('\n')}`;
    assert.deepEqual(report.faults.map((f) => f.fault).sort(), [...ALL_FAULTS].sort(), 'every fault was injected');
    assert.equal(report.completed, 40, context);
    assert.equal(report.duplicatedEffects, 0, context);
    assert.equal(report.effects, report.expectedEffects, context);
    assert.equal(report.outboxRows, 0, context);
    assert.equal(report.disagreements, 0, context);
    assert.ok(report.ok, context);
  });
});
