import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { recipe } from '../../src/recipe/index.js';
import { assertResidencyKept, residencyConflicts, ResidencyConflictError } from '../../src/regions/residency-check.js';

describe('residency at registration', () => {
  it('refuses a step outside region R reading the output of a step resident in R, naming both steps', () => {
    const plan = recipe('leak.test')
      .task('s', 'vault.secret', { input: '{}', region: 'eu-west' })
      .task('u', 'report.send', { input: { prev: 'outputs.s.secret' } })
      .build();
    assert.deepEqual(residencyConflicts(plan, 'us-east'), [
      {
        reader: 'u',
        readerAt: 'steps[1]',
        readerRegion: 'us-east',
        resident: 's',
        residentRegion: 'eu-west',
        output: 's',
      },
    ]);
    assert.throws(
      () => assertResidencyKept(plan, 'us-east'),
      (error: unknown) => {
        assert.ok(error instanceof ResidencyConflictError);
        assert.deepEqual([error.code, error.retryable], ['SOUS_RESIDENCY_CONFLICT', false]);
        assert.match(
          error.message,
          /step u \(steps\[1\], runs in us-east\) reads outputs\.s of step s, resident in eu-west/,
        );
        return true;
      },
    );
  });

  it('refuses a step of a third region and a home condition, allows the same region and the recipe output', () => {
    const plan = recipe('mixed.test')
      .task('s', 'vault.secret', { input: '{}', region: 'eu-west' })
      .task('t', 'vault.read', { input: { prev: 'outputs.s' }, region: 'eu-west' })
      .task('x', 'vault.read', { input: { prev: 'outputs.t' }, region: 'ap-south' })
      .task('h', 'report.send', { input: '{}', when: 'outputs.s.ok' })
      .output('outputs.t')
      .build();
    const found = residencyConflicts(plan, 'us-east').map((c) => `${c.reader}<-${c.resident}`);
    assert.deepEqual(found, ['x<-t', 'h<-s']);
  });

  it('finds nothing without a home region, or when every resident step is in the home region', () => {
    const plan = recipe('home.test')
      .task('s', 'vault.secret', { input: '{}', region: 'us-east' })
      .task('u', 'report.send', { input: { prev: 'outputs.s' } })
      .build();
    assert.deepEqual(residencyConflicts(plan, 'us-east'), []);
    const remote = recipe('noregions.test')
      .task('s', 'vault.secret', { input: '{}', region: 'eu-west' })
      .task('u', 'report.send', { input: { prev: 'outputs.s' } })
      .build();
    assert.deepEqual(residencyConflicts(remote, undefined), []);
  });

  it('looks into parallel branches and forEach bodies', () => {
    const plan = recipe('nested.test')
      .parallel('p', [
        (b) => b.task('s', 'vault.secret', { input: '{}', region: 'eu-west' }),
        (b) => b.task('o', 'other.thing', { input: '{}' }),
      ])
      .forEach('each', { items: 'outputs.s.items' }, (b) => b.task('u', 'report.send', { input: { x: 'item' } }))
      .build();
    assert.deepEqual(
      residencyConflicts(plan, 'us-east').map((c) => [c.reader, c.readerAt, c.resident]),
      [['each', 'steps[1]', 's']],
    );
  });
});
