import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadEnvironmentConfig } from '../../src/config.js';
import { createControlPlane } from '../../src/control-plane/control-plane.js';
import { retentionCrontab } from '../../src/control-plane/retention.js';
import {
  DEFAULT_RETENTION_MS,
  parseRetentionSetting,
  planRetention,
  PROCESSED_MARGIN_MS,
  purgeGroups,
  takeBatch,
} from '../../src/control-plane/retention-policy.js';
import { ConfigInvalidError } from '../../src/errors.js';
import {
  compileRecipe,
  parseRecipeYaml,
  planChecksum,
  recipe,
  RecipeInvalidError,
  type RecipeIssue,
} from '../../src/recipe/index.js';
import type { ExpiredExecutionRow } from '../../src/store/retention.js';

const DAY = 86_400_000;

function issuesOf(fn: () => unknown): readonly RecipeIssue[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof RecipeInvalidError, `expected RecipeInvalidError, got ${String(error)}`);
    return error.issues;
  }
  assert.fail('expected the recipe to be refused');
}

describe('retention settings', () => {
  it('reads durations, forever and off; refuses less than a minute and nonsense', () => {
    assert.equal(parseRetentionSetting('30d'), 30 * DAY);
    assert.equal(parseRetentionSetting(' 12h '), 12 * 3_600_000);
    assert.equal(parseRetentionSetting('1m'), 60_000);
    assert.equal(parseRetentionSetting('90000'), 90_000);
    assert.equal(parseRetentionSetting('OFF'), 'off');
    assert.equal(parseRetentionSetting('forever'), 'forever');
    for (const bad of ['59s', '0', '', 'never', '-1d', '30 days']) {
      assert.equal(parseRetentionSetting(bad), undefined, bad);
    }
  });

  it('SOUS_RETENTION defaults to 30 days, batches to 500, and says what is wrong', () => {
    const env = { SOUS_DATABASE_URL: 'postgres://x@y/z', SOUS_KAFKA_BROKERS: 'k:9092' };
    const config = loadEnvironmentConfig(env);
    assert.deepEqual([config.retention, config.retentionBatchSize], [DEFAULT_RETENTION_MS, 500]);
    assert.equal(DEFAULT_RETENTION_MS, 30 * DAY);
    assert.equal(loadEnvironmentConfig({ ...env, SOUS_RETENTION: 'off' }).retention, 'off');
    assert.equal(loadEnvironmentConfig({ ...env, SOUS_RETENTION: '7d' }).retention, 7 * DAY);
    assert.equal(loadEnvironmentConfig({ ...env, SOUS_RETENTION_BATCH_SIZE: '50' }).retentionBatchSize, 50);
    assert.throws(
      () => loadEnvironmentConfig({ ...env, SOUS_RETENTION: '10s' }),
      (e: unknown) =>
        e instanceof ConfigInvalidError &&
        /SOUS_RETENTION: SOUS_RETENTION must be a duration of at least 1m \(e\.g\. 30d, 12h\), forever or off/.test(
          e.message,
        ),
    );
    assert.throws(
      () => loadEnvironmentConfig({ ...env, SOUS_RETENTION_BATCH_SIZE: '0' }),
      /SOUS_RETENTION_BATCH_SIZE must be 1 to 10000/,
    );
  });

  it('schedules the purge every minute, and not at all when off', () => {
    assert.deepEqual(retentionCrontab(30 * DAY), ['* * * * * sous_retention']);
    assert.deepEqual(retentionCrontab('forever'), ['* * * * * sous_retention']);
    assert.deepEqual(retentionCrontab('off'), []);
  });

  it('the control-plane options are checked at once', () => {
    const base = { databaseUrl: 'postgres://x@y/z', brokers: ['k:9092'] };
    assert.throws(
      () => createControlPlane({ ...base, retention: 1000 }),
      (e: unknown) => e instanceof ConfigInvalidError && /retention must be at least 60000 ms/.test(e.message),
    );
    assert.throws(
      () => createControlPlane({ ...base, retentionBatchSize: 0 }),
      /retentionBatchSize must be 1 to 10000/,
    );
  });
});

describe('a recipe retention', () => {
  it('compiles from YAML and the builder to the same plan field', () => {
    const yaml = parseRecipeYaml('name: kept\nretention: 90d\nsteps:\n  - id: a\n    capability: x.y\n');
    assert.deepEqual(yaml.retention, { maxAgeMs: 90 * DAY });
    const built = recipe('kept').retention('90d').task('a', 'x.y').build();
    assert.equal(planChecksum(built), planChecksum(yaml));
    assert.equal(recipe('kept').retention('forever').task('a', 'x.y').build().retention, 'forever');
  });

  it('a plan compiles again to itself, retention included', () => {
    for (const retention of ['forever', '2h'] as const) {
      const plan = recipe('again').retention(retention).task('a', 'x.y').build();
      assert.deepEqual(compileRecipe(JSON.parse(JSON.stringify(plan))), plan);
    }
  });

  it('keeps plans without one valid and unchanged', () => {
    const plan = recipe('old').task('a', 'x.y').build();
    assert.equal('retention' in plan, false);
    assert.deepEqual(Object.keys(plan), ['name', 'steps']);
    assert.deepEqual(compileRecipe(JSON.parse(JSON.stringify(plan))), plan);
  });

  it('is refused with a clear error when it is not a duration of at least 1m or forever', () => {
    for (const retention of ['10s', 'never', 0, -5, true, { days: 3 }]) {
      const issues = issuesOf(() => compileRecipe({ name: 'bad', retention, steps: [{ id: 'a', capability: 'x.y' }] }));
      assert.deepEqual(issues, [
        { path: 'retention', message: 'must be a duration of at least 1m (e.g. 30d), or forever' },
      ]);
    }
  });
});

describe('purge groups', () => {
  const now = new Date('2026-01-31T00:00:00Z');

  it('a recipe retention wins over the default, shorter or longer; forever is left out', () => {
    const groups = purgeGroups(
      [
        { recipeName: 'plain', retention: null },
        { recipeName: 'short', retention: { maxAgeMs: DAY } },
        { recipeName: 'long', retention: { maxAgeMs: 90 * DAY } },
        { recipeName: 'kept', retention: 'forever' },
        { recipeName: 'also-plain', retention: null },
        // Not understood by this release: the default applies.
        { recipeName: 'odd', retention: { maxAgeMs: 'soon' } },
      ],
      30 * DAY,
      now,
    );
    assert.deepEqual(groups, [
      { maxAgeMs: DAY, finishedBefore: new Date('2026-01-30T00:00:00Z'), recipeNames: ['short'] },
      {
        maxAgeMs: 30 * DAY,
        finishedBefore: new Date('2026-01-01T00:00:00Z'),
        recipeNames: ['also-plain', 'odd', 'plain'],
      },
      { maxAgeMs: 90 * DAY, finishedBefore: new Date(now.getTime() - 90 * DAY), recipeNames: ['long'] },
    ]);
  });

  it('with a default of forever, only recipes with their own retention are purged', () => {
    const groups = purgeGroups(
      [
        { recipeName: 'plain', retention: null },
        { recipeName: 'short', retention: { maxAgeMs: DAY } },
      ],
      'forever',
      now,
    );
    assert.deepEqual(
      groups.map((g) => g.recipeNames),
      [['short']],
    );
  });

  it('plan retentions below the minimum are not trusted', () => {
    assert.equal(planRetention({ maxAgeMs: 1000 }), undefined);
    assert.deepEqual(planRetention({ maxAgeMs: 60_000 }), { maxAgeMs: 60_000 });
    assert.equal(planRetention('forever'), 'forever');
    assert.equal(planRetention(null), undefined);
  });
});

describe('purge batches', () => {
  const t = (minutes: number) => new Date(Date.UTC(2026, 0, 1, 0, minutes));
  const row = (rootId: string, id: string, events: number, created: number, finished: number): ExpiredExecutionRow => ({
    rootId,
    id,
    events,
    createdAt: t(created),
    finishedAt: t(finished),
  });

  it('takes whole trees until the event bound, the first one always', () => {
    const rows = [
      row('a', 'a', 40, 0, 5),
      row('a', 'a1', 30, 1, 4),
      row('b', 'b', 20, 10, 20),
      row('c', 'c', 50, 30, 40),
    ];
    const batch = takeBatch(rows, 100);
    assert.ok(batch !== undefined);
    assert.deepEqual(batch.ids, ['a', 'a1', 'b']);
    assert.equal(batch.roots, 2);
    assert.equal(batch.events, 90);
    assert.deepEqual(batch.processedBetween, {
      from: new Date(t(0).getTime() - PROCESSED_MARGIN_MS),
      to: new Date(t(20).getTime() + PROCESSED_MARGIN_MS),
    });
    assert.deepEqual(takeBatch(rows, 10)?.ids, ['a', 'a1'], 'a tree larger than the bound goes alone');
    assert.equal(takeBatch([], 100), undefined);
  });
});
