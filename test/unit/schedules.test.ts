// The pure part of scheduled starts: next runs in a time zone, due fires, the overlap and
// missed-run policies, and the definition's validation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  cronProblem,
  decideFires,
  dueFires,
  lastFireAtOrBefore,
  nextFireAfter,
  overlapAction,
  type DueFires,
} from '../../src/control-plane/schedule-policy.js';
import { parseScheduleDefinition, ScheduleInvalidError } from '../../src/control-plane/schedules.js';

const at = (iso: string) => new Date(iso);
const iso = (d: Date | undefined) => d?.toISOString();

describe('next run in a time zone', () => {
  it('reads the cron expression in the zone, not in UTC', () => {
    // 09:00 in Paris on a weekday: 08:00 UTC in winter, 07:00 UTC in summer.
    assert.equal(
      iso(nextFireAfter('0 9 * * 1-5', 'Europe/Paris', at('2026-11-27T10:00:00Z'))),
      '2026-11-30T08:00:00.000Z',
    );
    assert.equal(
      iso(nextFireAfter('0 9 * * 1-5', 'Europe/Paris', at('2026-07-01T06:00:00Z'))),
      '2026-07-01T07:00:00.000Z',
    );
    assert.equal(iso(nextFireAfter('0 9 * * *', 'UTC', at('2026-07-01T06:00:00Z'))), '2026-07-01T09:00:00.000Z');
  });

  it('is strictly after the given instant', () => {
    assert.equal(iso(nextFireAfter('* * * * *', 'UTC', at('2026-01-01T00:01:00Z'))), '2026-01-01T00:02:00.000Z');
    assert.equal(iso(nextFireAfter('* * * * *', 'UTC', at('2026-01-01T00:01:30Z'))), '2026-01-01T00:02:00.000Z');
  });

  it('fires once across daylight-saving changes: a skipped time after the gap, a repeated time once', () => {
    // New York, 8 March 2026: 02:00 → 03:00. 02:30 does not exist: it fires at 03:30 EDT.
    assert.equal(
      iso(nextFireAfter('30 2 * * *', 'America/New_York', at('2026-03-08T06:59:00Z'))),
      '2026-03-08T07:30:00.000Z',
    );
    // 1 November 2026: 02:00 → 01:00. 01:30 occurs twice: one fire, the first (EDT).
    const first = nextFireAfter('30 1 * * *', 'America/New_York', at('2026-11-01T04:00:00Z'));
    assert.equal(iso(first), '2026-11-01T05:30:00.000Z');
    assert.equal(iso(nextFireAfter('30 1 * * *', 'America/New_York', first)), '2026-11-02T06:30:00.000Z');
  });

  it('finds the last fire at or before an instant, within a bound', () => {
    const notBefore = at('2026-01-01T00:00:00Z');
    assert.equal(
      iso(lastFireAtOrBefore('*/5 * * * *', 'UTC', at('2026-01-01T00:10:00Z'), notBefore)),
      '2026-01-01T00:10:00.000Z',
    );
    assert.equal(
      iso(lastFireAtOrBefore('*/5 * * * *', 'UTC', at('2026-01-01T00:14:59Z'), notBefore)),
      '2026-01-01T00:10:00.000Z',
    );
    assert.equal(lastFireAtOrBefore('0 12 * * *', 'UTC', at('2026-01-01T11:00:00Z'), notBefore), undefined);
  });
});

describe('due fires', () => {
  const cursor = at('2026-01-01T00:01:00Z');

  it('owes nothing before the cursor', () => {
    const due = dueFires('* * * * *', 'UTC', cursor, at('2026-01-01T00:00:59Z'));
    assert.deepEqual(due, { onTime: [], latestMissed: undefined, next: cursor });
  });

  it('owes the fire at the cursor when evaluated on time, and moves past now', () => {
    const due = dueFires('* * * * *', 'UTC', cursor, at('2026-01-01T00:01:02Z'));
    assert.deepEqual(due.onTime.map(iso), ['2026-01-01T00:01:00.000Z']);
    assert.equal(due.latestMissed, undefined);
    assert.equal(iso(due.next), '2026-01-01T00:02:00.000Z');
  });

  it('counts fires older than the window as missed, keeping only the latest', () => {
    // Down from 00:01 to 03:00:20: a fire every minute, 90 s window.
    const due = dueFires('* * * * *', 'UTC', cursor, at('2026-01-01T03:00:20Z'), 90_000);
    assert.deepEqual(due.onTime.map(iso), ['2026-01-01T02:59:00.000Z', '2026-01-01T03:00:00.000Z']);
    assert.equal(iso(due.latestMissed), '2026-01-01T02:58:00.000Z');
    assert.equal(iso(due.next), '2026-01-01T03:01:00.000Z');
  });

  it('sees a daily fire missed during downtime, with no fire on time', () => {
    const due = dueFires('0 2 * * *', 'Europe/Paris', at('2026-01-01T01:00:00Z'), at('2026-01-01T05:00:00Z'));
    assert.deepEqual(due.onTime, []);
    assert.equal(iso(due.latestMissed), '2026-01-01T01:00:00.000Z');
    assert.equal(iso(due.next), '2026-01-02T01:00:00.000Z');
  });
});

describe('overlap policy', () => {
  it('starts whenever nothing runs', () => {
    for (const policy of ['skip', 'queue_one', 'allow'] as const) {
      assert.equal(overlapAction(policy, false, false), 'start');
    }
  });

  it('skips, queues one, or allows while the last execution runs', () => {
    assert.equal(overlapAction('skip', true, false), 'skip');
    assert.equal(overlapAction('queue_one', true, false), 'queue');
    assert.equal(overlapAction('queue_one', true, true), 'skip', 'one queued fire at most');
    assert.equal(overlapAction('allow', true, true), 'start');
  });
});

describe('one evaluation', () => {
  const t = (m: number) => new Date(Date.UTC(2026, 0, 1, 0, m));
  const due = (onTime: number[], missed?: number): DueFires => ({
    onTime: onTime.map(t),
    latestMissed: missed === undefined ? undefined : t(missed),
    next: t(99),
  });
  const actions = (decisions: ReturnType<typeof decideFires>) =>
    decisions.map((d) => `${d.fireTime.getUTCMinutes()}:${d.action}${d.catchUp ? ':catch-up' : ''}`);

  it('runs once on catch-up when only missed fires are due (run_once)', () => {
    const decided = decideFires({
      overlap: 'skip',
      missedRuns: 'run_once',
      due: due([], 5),
      queued: undefined,
      running: false,
    });
    assert.deepEqual(actions(decided), ['5:start:catch-up']);
  });

  it('records missed fires without a run under skip, or when a fire is on time anyway', () => {
    assert.deepEqual(
      actions(decideFires({ overlap: 'skip', missedRuns: 'skip', due: due([], 5), queued: undefined, running: false })),
      ['5:missed'],
    );
    assert.deepEqual(
      actions(
        decideFires({ overlap: 'skip', missedRuns: 'run_once', due: due([7], 5), queued: undefined, running: false }),
      ),
      ['5:missed', '7:start'],
    );
  });

  it('applies the overlap policy to the catch-up too', () => {
    assert.deepEqual(
      actions(
        decideFires({ overlap: 'skip', missedRuns: 'run_once', due: due([], 5), queued: undefined, running: true }),
      ),
      ['5:skip:catch-up'],
    );
  });

  it('counts a start of this evaluation as running for the fires after it', () => {
    const input = { missedRuns: 'skip' as const, due: due([1, 2, 3]), queued: undefined, running: false };
    assert.deepEqual(actions(decideFires({ ...input, overlap: 'skip' })), ['1:start', '2:skip', '3:skip']);
    assert.deepEqual(actions(decideFires({ ...input, overlap: 'queue_one' })), ['1:start', '2:queue', '3:skip']);
    assert.deepEqual(actions(decideFires({ ...input, overlap: 'allow' })), ['1:start', '2:start', '3:start']);
  });

  it('starts the queued fire first once its blocker ended, and keeps it while it runs', () => {
    assert.deepEqual(
      actions(decideFires({ overlap: 'queue_one', missedRuns: 'skip', due: due([4]), queued: t(2), running: false })),
      ['2:start_queued', '4:queue'],
    );
    assert.deepEqual(
      actions(decideFires({ overlap: 'queue_one', missedRuns: 'skip', due: due([4]), queued: t(2), running: true })),
      ['4:skip'],
    );
    assert.deepEqual(
      actions(decideFires({ overlap: 'queue_one', missedRuns: 'skip', due: due([]), queued: t(2), running: false })),
      ['2:start_queued'],
    );
  });
});

describe('schedule definition', () => {
  it('fills in the defaults', () => {
    const parsed = parseScheduleDefinition({ name: 'nightly', recipe: 'report', cron: '0 2 * * *' });
    assert.deepEqual(parsed, {
      name: 'nightly',
      recipe: 'report',
      cron: '0 2 * * *',
      timeZone: 'UTC',
      input: {},
      overlap: 'skip',
      missedRuns: 'run_once',
    });
  });

  it('names what is wrong', () => {
    const problem = (definition: Parameters<typeof parseScheduleDefinition>[0]) => {
      try {
        parseScheduleDefinition(definition);
      } catch (error) {
        assert.ok(error instanceof ScheduleInvalidError);
        assert.equal(error.code, 'SOUS_SCHEDULE_INVALID');
        return error.message;
      }
      assert.fail('accepted');
    };
    assert.match(problem({ name: 'a', recipe: 'r', cron: '* * * *' }), /cron: "\* \* \* \*" must have 5 fields/);
    assert.match(
      problem({ name: 'a', recipe: 'r', cron: '61 * * * *' }),
      /cron: "61 \* \* \* \*" is not a cron expression/,
    );
    assert.match(
      problem({ name: 'a', recipe: 'r', cron: '* * * * *', timeZone: 'Mars/Olympus' }),
      /timeZone: "Mars\/Olympus" is not an IANA time zone/,
    );
    assert.match(problem({ name: 'no spaces', recipe: 'r', cron: '* * * * *' }), /name: 1 to 100 letters/);
    assert.match(
      problem({ name: 'a', recipe: 'r', cron: '* * * * *', overlap: 'sometimes' as 'skip' }),
      /overlap: .*skip.*queue_one.*allow/,
    );
  });

  it('has no problem with a valid expression and zone', () => {
    assert.equal(cronProblem('*/15 8-18 * * 1-5', 'America/Sao_Paulo'), undefined);
  });
});
