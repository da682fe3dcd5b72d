// The pure parts of metrics, health and the backlog view: outbox age from WAL marks,
// readiness with timeouts, attempt timing, the backlog merge, what decisions count,
// the probe answers and the metrics settings of the environment.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { attemptTiming } from '../../src/api/attempt-timing.js';
import { loadEnvironmentConfig } from '../../src/config.js';
import type { Decision } from '../../src/engine/decide.js';
import type { EngineEvent } from '../../src/engine/events.js';
import type { ExecutionState } from '../../src/engine/state.js';
import { mergeBacklog } from '../../src/observability/capability-backlog.js';
import { ControlPlaneMetrics } from '../../src/observability/control-plane-metrics.js';
import { answerProbe } from '../../src/observability/probes.js';
import { checkReadiness } from '../../src/observability/readiness.js';
import { capabilityOf, observedChanges, UNKNOWN_CAPABILITY } from '../../src/observability/step-transitions.js';
import { WalWatermarks } from '../../src/observability/wal-watermarks.js';
import { recipe } from '../../src/recipe/builder.js';

describe('WalWatermarks', () => {
  it('reads 0 when the slot has confirmed the end of the WAL', () => {
    const marks = new WalWatermarks();
    marks.record(1000, 100);
    assert.equal(marks.ageSeconds(5000, 100, 100), 0);
  });

  it('dates the oldest undelivered change after the last mark the slot has passed', () => {
    const marks = new WalWatermarks();
    marks.record(0, 100);
    marks.record(10_000, 200);
    marks.record(20_000, 300);
    // Confirmed 150: the mark at 0 s (WAL end 100) is passed, the one at 10 s is not.
    assert.equal(marks.ageSeconds(25_000, 300, 150), 25);
    // Confirmed 250: everything written before 10 s is delivered.
    assert.equal(marks.ageSeconds(25_000, 300, 250), 15);
  });

  it('keeps the first mark of a WAL that did not move, and a bounded history', () => {
    const marks = new WalWatermarks(2);
    marks.record(0, 100);
    marks.record(5000, 100);
    assert.equal(marks.ageSeconds(10_000, 200, 100), 10, 'the WAL ended at 100 already at 0 s');
    marks.record(20_000, 300);
    marks.record(30_000, 400);
    // The mark at 0 s fell out: the change is at least as old as the oldest mark kept.
    assert.equal(marks.ageSeconds(40_000, 400, 50), 20);
  });
});

describe('checkReadiness', () => {
  it('is ready when every check passes, with their details', async () => {
    const r = await checkReadiness({ a: async () => 'fine', b: async () => undefined }, 1000);
    assert.equal(r.ready, true);
    assert.equal(r.checks.a?.detail, 'fine');
    assert.equal(r.checks.b?.ok, true);
  });

  it('is not ready when a check throws or hangs, and answers within the timeout', async () => {
    const started = Date.now();
    const r = await checkReadiness(
      {
        up: async () => 'ok',
        down: async () => {
          throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
        },
        hung: () => new Promise<string>(() => undefined),
      },
      100,
    );
    assert.ok(Date.now() - started < 1000);
    assert.equal(r.ready, false);
    assert.equal(r.checks.up?.ok, true);
    assert.deepEqual([r.checks.down?.ok, r.checks.down?.code], [false, 'ECONNREFUSED']);
    assert.deepEqual([r.checks.hung?.ok, r.checks.hung?.code], [false, 'SOUS_CHECK_TIMEOUT']);
  });
});

describe('attemptTiming', () => {
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
  const base = { attempt: 1, scheduledAt: at(0), startedAt: null, finishedAt: null };

  it('waits to now while no worker started it', () => {
    assert.deepEqual(attemptTiming({ ...base, status: 'scheduled' }, at(7)), {
      attempt: 1,
      waitSeconds: 7,
      runSeconds: null,
      waiting: true,
      running: false,
    });
  });

  it('runs to now once started, and measures both once finished', () => {
    const running = attemptTiming({ ...base, status: 'running', startedAt: at(2) }, at(10));
    assert.deepEqual([running.waitSeconds, running.runSeconds, running.running], [2, 8, true]);
    const done = attemptTiming({ ...base, status: 'completed', startedAt: at(2), finishedAt: at(5) }, at(60));
    assert.deepEqual([done.waitSeconds, done.runSeconds, done.waiting, done.running], [2, 3, false, false]);
  });

  it('waited until it ended when it ended unstarted; a dead-lettered unstarted one has no end', () => {
    const timedOut = attemptTiming({ ...base, status: 'failed', finishedAt: at(30) }, at(60));
    assert.deepEqual([timedOut.waitSeconds, timedOut.runSeconds], [30, null]);
    const parked = attemptTiming({ ...base, status: 'dead_lettered' }, at(60));
    assert.deepEqual([parked.waitSeconds, parked.runSeconds, parked.waiting], [null, null, false]);
  });
});

describe('mergeBacklog', () => {
  const now = new Date('2026-01-01T00:01:00Z');
  it('joins waiting attempts and consumer lag by capability', () => {
    const rows = mergeBacklog(
      [{ capability: 'b.x', waiting: 2, oldestScheduledAt: new Date('2026-01-01T00:00:00Z') }],
      [
        { capability: 'a.x', lag: 5, groups: ['g'] },
        { capability: 'b.x', lag: 3, groups: ['g'] },
      ],
      now,
    );
    assert.deepEqual(
      rows.map((r) => [r.capability, r.waiting, r.oldestWaitSeconds, r.consumerLag]),
      [
        ['a.x', 0, null, 5],
        ['b.x', 2, 60, 3],
      ],
    );
  });

  it('leaves the lag unknown (null) when Kafka did not answer', () => {
    const rows = mergeBacklog([{ capability: 'b.x', waiting: 1, oldestScheduledAt: now }], undefined, now);
    assert.equal(rows[0]?.consumerLag, null);
  });
});

describe('observedChanges', () => {
  const plan = recipe('shop')
    .task('charge', 'payments.charge', { compensate: { capability: 'payments.refund' } })
    .build();
  const state = { recipe: 'shop', version: 1 } as ExecutionState;
  const decision = (events: EngineEvent[]): Decision => ({ events, state, items: [] });
  const at = '2026-01-01T00:00:00.000Z';

  it('names the capability of a step key, a compensation its own', () => {
    assert.equal(capabilityOf(plan, 'charge'), 'payments.charge');
    assert.equal(capabilityOf(plan, 'charge~compensate'), 'payments.refund');
    assert.equal(capabilityOf(plan, 'nothing'), UNKNOWN_CAPABILITY);
    assert.equal(capabilityOf(undefined, 'charge'), UNKNOWN_CAPABILITY);
  });

  it('counts a short command as started and completed, a skip as neither, and executions', () => {
    const changes = observedChanges(
      [
        decision([
          { type: 'ExecutionStarted', at, executionId: 'e', recipe: 'shop', version: 1, input: {} },
          {
            type: 'StepCompleted',
            at,
            stepKey: 'charge',
            stepExecutionId: 's1',
            output: null,
            startedAt: at,
            workerId: 'w',
          },
          { type: 'StepCompleted', at, stepKey: 'charge', output: null, skippedByOperator: true },
          {
            type: 'StepFailed',
            at,
            stepKey: 'charge~compensate',
            stepExecutionId: 's2',
            error: { code: 'x', message: '', retryable: false },
          },
          { type: 'ExecutionFailed', at, error: { code: 'x', message: '', retryable: false }, compensated: true },
        ]),
      ],
      () => plan,
    );
    assert.deepEqual(
      changes.steps.map((s) => [s.kind, s.capability, s.stepExecutionId]),
      [
        ['started', 'payments.charge', 's1'],
        ['completed', 'payments.charge', 's1'],
        ['failed', 'payments.refund', 's2'],
      ],
    );
    assert.equal(changes.executionsStarted, 1);
    assert.deepEqual(changes.executionsFinished, ['failed']);
  });

  it('records run times only for attempts a reply timed', async () => {
    const metrics = new ControlPlaneMetrics({ processMetrics: false });
    metrics.changed(
      {
        steps: [
          { kind: 'completed', capability: 'payments.charge', stepExecutionId: 's1' },
          { kind: 'completed', capability: 'payments.charge', stepExecutionId: 's2' },
        ],
        executionsStarted: 0,
        executionsFinished: [],
      },
      new Map([['s1', 0.2]]),
    );
    const text = await metrics.registry.metrics();
    assert.match(text, /sous_steps_completed_total\{capability="payments.charge"\} 2/);
    assert.match(text, /sous_step_duration_seconds_count\{capability="payments.charge",outcome="completed"\} 1/);
  });
});

describe('answerProbe', () => {
  const probes = (ready: boolean) => ({
    registry: new Registry(),
    readiness: async () => ({ ready, checks: { postgres: { ok: ready, ms: 1 } } }),
  });

  it('answers liveness without checking anything, readiness as 200 or 503, and 404 elsewhere', async () => {
    assert.equal((await answerProbe('/healthz', probes(false)))?.status, 200);
    assert.equal((await answerProbe('/readyz', probes(true)))?.status, 200);
    const unready = await answerProbe('/readyz', probes(false));
    assert.ok(unready !== undefined);
    assert.equal(unready.status, 503);
    assert.deepEqual(JSON.parse(unready.body), {
      status: 'not ready',
      checks: { postgres: { ok: false, ms: 1 } },
    });
    assert.match((await answerProbe('/metrics', probes(true)))?.contentType ?? '', /^text\/plain/);
    assert.equal(await answerProbe('/other', probes(true)), undefined);
  });
});

describe('metrics settings', () => {
  const env = { SOUS_DATABASE_URL: 'postgres://x@y/z', SOUS_KAFKA_BROKERS: 'k:9092' };

  it('serve on 9464 every 10 s by default, and not at all with off', () => {
    const config = loadEnvironmentConfig(env);
    assert.deepEqual([config.metricsPort, config.metricsHost, config.sampleIntervalMs], [9464, '127.0.0.1', 10_000]);
    assert.equal(loadEnvironmentConfig({ ...env, SOUS_METRICS_PORT: 'off' }).metricsPort, undefined);
    assert.equal(loadEnvironmentConfig({ ...env, SOUS_METRICS_PORT: '0' }).metricsPort, 0);
  });

  it('refuses a bad port or interval with the setting named', () => {
    assert.throws(() => loadEnvironmentConfig({ ...env, SOUS_METRICS_PORT: '70000' }), /SOUS_METRICS_PORT/);
    assert.throws(() => loadEnvironmentConfig({ ...env, SOUS_METRICS_PORT: 'abc' }), /SOUS_METRICS_PORT/);
    assert.throws(() => loadEnvironmentConfig({ ...env, SOUS_METRICS_SAMPLE_MS: '10' }), /SOUS_METRICS_SAMPLE_MS/);
  });
});
