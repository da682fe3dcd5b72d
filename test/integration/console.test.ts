// The operator console in a real headless Chromium (Debian's package, driven by
// playwright-core) against the real stack: sign in, find a failed execution by filter,
// open it, retry its step and watch it complete live; reprocess a dead letter with a
// patched payload; a viewer sees no action and a forged request is refused. Every page
// is photographed into .cache/console-screenshots (SOUS_SCREENSHOT_DIR to change it).
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { sql } from 'kysely';
import { z } from 'zod';
import { createApiToken } from '../../src/api/auth.js';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { parseRecipeYaml } from '../../src/recipe/index.js';
import { kafkaBrokers } from '../../src/stack/config.js';
import { createWorker, defineCapability } from '../../src/worker/index.js';
import { startTestApi } from '../helpers/api.js';
import { launchChromium } from '../helpers/browser.js';
import { waitForExecution } from '../helpers/control-plane.js';
import { stackConfig, testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker } from '../helpers/test-worker.js';

const ns = uniqueName('console').replaceAll('-', '');
const cap = (name: string) => `test${ns}.${name}`;
const tour = `${ns}.tour`;
const ship = `${ns}.ship`;
const gate = `${ns}.gate`;
const SHOTS = process.env.SOUS_SCREENSHOT_DIR ?? join(import.meta.dirname, '..', '..', '.cache', 'console-screenshots');

let cp: ControlPlane & { replyTopic: string };
let base: string;
let browser: Browser;
const tokens = { viewer: '', operator: '' };
const cleanup: (() => Promise<unknown>)[] = [];
let workFails = true;
let failedId: string;
let shipId: string;

const tourYaml = (withCompensation: boolean) => `
name: ${tour}
steps:
  - id: reserve
    capability: ${cap('echo')}
    input: { items: input.items }
${withCompensation ? `    compensate: { capability: ${cap('echo')}, input: { undo: 'true' } }\n` : ''}  - id: checks
    parallel:
      - - id: fraud
          capability: ${cap('echo')}
          input: { check: '"fraud"' }
      - - id: stock
          capability: ${cap('echo')}
          input: { check: '"stock"' }
  - id: lines
    forEach: input.items
    concurrency: 2
    steps:
      - id: pack
        capability: ${cap('echo')}
        input: { item: item }
  - id: work
    capability: ${cap('flaky')}
    input: { n: $count(outputs.lines) }
output: outputs.work
`;

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(context: BrowserContext, token: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${base}/console`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Pages' }).waitFor();
  return page;
}

async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.viewer}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data: T; errors?: unknown[] };
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

async function waitForDeadLetter(executionId: string): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const rows = await cp.db
      .selectFrom('sous.dead_letter')
      .select('id')
      .where('execution_id', '=', executionId)
      .where('status', '=', 'pending')
      .execute();
    if (rows[0] !== undefined) return rows[0].id;
    if (Date.now() > deadline) throw new Error(`no dead letter was ingested for ${executionId}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

before(async () => {
  await mkdir(SHOTS, { recursive: true });
  let url: string;
  ({ controlPlane: cp, url } = await startTestApi(ns, cleanup));
  base = url;
  tokens.viewer = (await createApiToken(cp.db, uniqueName('console-viewer'), 'viewer', 'console.test')).token;
  tokens.operator = (await createApiToken(cp.db, uniqueName('console-operator'), 'operator', 'console.test')).token;
  const worker = await startTestWorker(testKafka(), {
    [cap('echo')]: async (c) => ({ output: c.input ?? null }),
    [cap('flaky')]: async () =>
      workFails
        ? { error: { code: 'upstream_down', message: 'the upstream service refused', retryable: false } }
        : { output: { worked: true } },
  });
  cleanup.push(() => worker.stop());
  // A strict service: an address that is not a string is a poison command (dead letter).
  const shipWorker = createWorker({
    brokers: kafkaBrokers(stackConfig),
    groupId: uniqueName('console-ship'),
    handleSignals: false,
    capabilities: [
      defineCapability({
        name: cap('ship'),
        input: z.object({ address: z.string() }),
        output: z.object({ shipped: z.string() }),
        handler: async (input) => ({ shipped: input.address }),
      }),
    ],
  });
  await shipWorker.start();
  cleanup.push(() => shipWorker.stop());
  await cp.registerRecipe(parseRecipeYaml(tourYaml(false)));
  await cp.registerRecipe(parseRecipeYaml(tourYaml(true)));
  await cp.registerRecipe(
    parseRecipeYaml(
      `name: ${ship}\nsteps:\n  - id: ship\n    capability: ${cap('ship')}\n    input: { address: input.address }\noutput: outputs.ship\n`,
    ),
  );
  await cp.registerRecipe(
    parseRecipeYaml(`
name: ${gate}
steps:
  - id: approval
    waitForSignal: go
  - id: after
    capability: ${cap('echo')}
    input: { approved: outputs.approval.ok }
output: outputs.after
`),
  );
  browser = await launchChromium();
  cleanup.push(() => browser.close());
});

after(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
});

describe('operator console', () => {
  it('finds a failed execution by filter, retries its step and watches it complete live', async () => {
    failedId = (
      await cp.startExecution({ recipe: tour, input: { items: ['a', 'b', 'c'] }, idempotencyKey: uniqueName('k') })
    ).executionId;
    await waitForExecution(cp, failedId, (v) => v.status === 'failed');
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await signIn(context, tokens.operator);
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      await shot(page, 'overview');
      // A status tile opens the list filtered by that status.
      await page.getByRole('link', { name: / failed$/ }).click();
      await page.getByRole('heading', { name: 'Executions' }).waitFor();
      assert.ok(await page.getByLabel('failed', { exact: true }).isChecked(), 'the tile filters by its status');

      await page.getByRole('link', { name: 'Executions', exact: true }).click();
      await page.getByLabel('failed', { exact: true }).check();
      await page.getByLabel('Recipe', { exact: true }).fill(tour);
      await page.getByRole('button', { name: 'Apply filters' }).click();
      const row = page.locator(`tr[data-execution="${failedId}"]`);
      await row.waitFor();
      assert.equal(await page.locator('tbody tr').count(), 1, 'only the failed execution of this recipe');
      await shot(page, 'executions');

      await row.getByRole('link').click();
      await page.locator('.execution-status[data-status="FAILED"]').waitFor();
      await page.locator('[data-node="step:work"]').click();
      await page.getByRole('table', { name: 'Attempts of work' }).getByText('upstream_down').first().waitFor();
      await shot(page, 'execution-failed');

      workFails = false;
      await page.getByRole('button', { name: 'Retry work' }).click();
      const dialog = page.getByRole('dialog', { name: 'Retry work' });
      await dialog.getByText('cannot be retried in place').waitFor();
      await dialog.getByRole('button', { name: 'Retry (rerun from here)' }).click();
      // No reload: the page follows the execution through its subscription.
      await page.locator('.execution-status[data-status="COMPLETED"]').waitFor({ timeout: 60_000 });
      await page.locator('[data-node="step:work"].state-completed').waitFor();
      await shot(page, 'execution-completed');
      const done = await waitForExecution(cp, failedId);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.output, { worked: true });

      await page.setViewportSize({ width: 390, height: 844 });
      await shot(page, 'execution-narrow');
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.getByRole('link', { name: 'Recipes' }).click();
      await page.getByRole('button', { name: new RegExp(`^${tour.replaceAll('.', '\\.')}`) }).click();
      await page.getByLabel('Changes from v1 to v2').getByText('+ ').first().waitFor();
      await shot(page, 'recipes');
      await page.getByRole('link', { name: 'Shards' }).click();
      await page.getByRole('table', { name: 'Shards' }).getByText(cap('ship')).first().waitFor();
      await shot(page, 'shards');
    } finally {
      await context.close();
    }
  });

  it('shows a viewer no action, and the API refuses a forged one', async () => {
    shipId = (await cp.startExecution({ recipe: ship, input: { address: 221 } })).executionId;
    await waitForExecution(cp, shipId, (v) =>
      v.steps.some((s) => s.stepKey === 'ship' && s.status === 'dead_lettered'),
    );
    await waitForDeadLetter(shipId);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await signIn(context, tokens.viewer);
      await page.goto(`${base}/console#/executions/${shipId}`);
      await page.locator('.execution-status[data-status="RUNNING"]').waitFor();
      await page.locator('[data-node="step:ship"]').click();
      await page.getByRole('table', { name: 'Attempts of ship' }).waitFor();
      const actions = page.getByRole('button', { name: /^(Retry|Skip|Rerun|Cancel|Pause|Resume|Signal)/ });
      assert.equal(await actions.count(), 0, 'a viewer is offered no action');
      await page.getByRole('link', { name: 'Dead letters' }).click();
      await page
        .getByRole('button', { name: /^Preview/ })
        .first()
        .waitFor();
      assert.equal(await page.getByRole('button', { name: /Reprocess|Discard/ }).count(), 0);
      assert.equal(await page.getByRole('checkbox').count(), 0);

      // What the hidden buttons would have sent, sent by hand with the viewer's token.
      const forged = await page.evaluate(
        async ({ token, id }) => {
          const response = await fetch('/graphql', {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body: JSON.stringify({
              query: 'mutation($id: ID!) { retryStep(executionId: $id, stepKey: "ship") { status } }',
              variables: { id },
            }),
          });
          return (await response.json()) as { errors?: { extensions?: { code?: string } }[] };
        },
        { token: tokens.viewer, id: shipId },
      );
      assert.equal(forged.errors?.[0]?.extensions?.code, 'SOUS_FORBIDDEN');
      const unknown = await page.evaluate(async () => {
        const response = await fetch('/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: 'Bearer sous_forged' },
          body: JSON.stringify({ query: '{ me { role } }' }),
        });
        return response.status;
      });
      assert.equal(unknown, 401);
      const view = await waitForExecution(cp, shipId, () => true);
      assert.equal(view.steps.find((s) => s.stepKey === 'ship')?.status, 'dead_lettered', 'nothing changed');
    } finally {
      await context.close();
    }
  });

  it('reprocesses a dead letter with a patched payload, and the execution completes', async () => {
    const letterId = await waitForDeadLetter(shipId);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await signIn(context, tokens.operator);
      await page.getByRole('link', { name: 'Dead letters' }).click();
      await page.getByLabel('Capability').fill(cap('ship'));
      await page.getByRole('button', { name: 'Apply filters' }).click();
      await page
        .locator(`tr[data-letter="${letterId}"]`)
        .getByRole('button', { name: /^Preview/ })
        .click();
      const payload = page.getByLabel(/^Payload/);
      const record = JSON.parse(await payload.inputValue()) as { input: { address: unknown } };
      assert.equal(record.input.address, 221);
      record.input.address = '221B Baker Street';
      await payload.fill(JSON.stringify(record, null, 2));
      await shot(page, 'dead-letters');
      await page.getByRole('button', { name: 'Reprocess with this payload' }).click();
      const dialog = page.getByRole('dialog', { name: 'Reprocess dead letters' });
      await dialog.getByText('carrying the payload you edited').waitFor();
      await dialog.getByRole('button', { name: 'Reprocess', exact: true }).click();
      const outcome = page.locator(`[data-outcome="${letterId}"]`);
      await outcome.waitFor();
      assert.match(await outcome.innerText(), /✓ reprocessed; its step is in flight again/);
      const done = await waitForExecution(cp, shipId);
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.output, { shipped: '221B Baker Street' });
    } finally {
      await context.close();
    }
  });

  it('serves the page and its assets from the package, and the API fields the console reads', async () => {
    const page = await fetch(`${base}/console`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const html = await page.text();
    for (const [asset, type] of [
      ['/console/assets/console.js', 'text/javascript'],
      ['/console/assets/console.css', 'text/css'],
    ] as const) {
      assert.ok(html.includes(asset), `the page loads ${asset}`);
      const response = await fetch(`${base}${asset}`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', new RegExp(type));
    }
    assert.ok(!/https?:\/\//.test(html), 'nothing is loaded from another origin');

    // Dead letters by ingestion time: the one reprocessed above is inside [an hour ago, now].
    const letters = (after: string | null, before: string | null) =>
      gql<{ deadLetters: { id: string }[] }>(
        `query($c: String, $a: DateTime, $b: DateTime) {
          deadLetters(filter: { status: REPROCESSED, capability: $c }, ingestedAfter: $a, ingestedBefore: $b) { id } }`,
        { c: cap('ship'), a: after, b: before },
      );
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const later = new Date(Date.now() + 60_000).toISOString();
    assert.equal((await letters(hourAgo, later)).deadLetters.length, 1);
    assert.equal((await letters(later, null)).deadLetters.length, 0, 'none ingested after now');
    assert.equal((await letters(null, hourAgo)).deadLetters.length, 0, 'none ingested an hour ago');

    // A dead-lettered execution idle past sous.stuck_after (5 minutes) is stuck, with its reason.
    const parked = (await cp.startExecution({ recipe: ship, input: { address: 222 } })).executionId;
    await waitForExecution(cp, parked, (v) =>
      v.steps.some((st) => st.stepKey === 'ship' && st.status === 'dead_lettered'),
    );
    // Ten minutes pass for this execution only: its last change is dated back.
    await sql`UPDATE sous.execution SET updated_at = now() - interval '10 minutes' WHERE id = ${parked}`.execute(cp.db);
    const { overview } = await gql<{
      overview: {
        executionsByStatus: { status: string; count: number }[];
        stuck: { executionId: string; reason: string; waitingOn: string[]; idleSeconds: number }[];
        stuckAfterSeconds: number;
      };
    }>(
      `{ overview { executionsByStatus { status count } stuck(first: 200) { executionId reason waitingOn idleSeconds } stuckAfterSeconds } }`,
    );
    assert.equal(overview.executionsByStatus.length, 7, 'every status, zero included');
    assert.ok((overview.executionsByStatus.find((c) => c.status === 'COMPLETED')?.count ?? 0) >= 2);
    assert.equal(overview.stuckAfterSeconds, 300);
    const stuck = overview.stuck.find((e) => e.executionId === parked);
    assert.deepEqual(stuck && { reason: stuck.reason, waitingOn: stuck.waitingOn, idle: stuck.idleSeconds >= 600 }, {
      reason: 'dead_lettered',
      waitingOn: ['ship'],
      idle: true,
    });
  });

  it('shows a new execution live, pauses, resumes and signals it, and drains and resumes a shard', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await signIn(context, tokens.operator);
      await page.getByRole('link', { name: 'Executions', exact: true }).click();
      await page.getByLabel('Recipe', { exact: true }).fill(gate);
      await page.getByRole('button', { name: 'Apply filters' }).click();
      await page.getByText('No execution matches these filters.').waitFor();
      // Started elsewhere: the list shows it through executionsChanged, without a reload.
      const id = (await cp.startExecution({ recipe: gate, input: {} })).executionId;
      await page.locator(`tr[data-execution="${id}"]`).getByRole('link').click();
      const status = (s: string) => page.locator(`.execution-status[data-status="${s}"]`).waitFor();
      await status('RUNNING');
      const act = async (button: string, confirm: string) => {
        await page.getByRole('button', { name: button, exact: true }).click();
        await page.getByRole('dialog', { name: button }).getByRole('button', { name: confirm }).click();
      };
      await act('Pause', 'Pause execution');
      await status('PAUSED');
      await act('Resume', 'Resume execution');
      await status('RUNNING');
      await page.getByRole('button', { name: 'Signal', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'Signal' });
      await dialog.getByLabel('Signal name').fill('go');
      await dialog.getByLabel('Payload (JSON)').fill('{ "ok": true }');
      await dialog.getByRole('button', { name: 'Send signal' }).click();
      await status('COMPLETED');
      assert.deepEqual((await waitForExecution(cp, id)).output, { approved: true });

      await page.getByRole('link', { name: 'Shards' }).click();
      const row = page.getByRole('row').filter({ hasText: cap('ship') });
      await row.getByRole('button', { name: /^Drain / }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Drain shard' }).click();
      await row.getByRole('button', { name: /^Resume / }).waitFor();
      await row.getByText('draining').waitFor({ timeout: 30_000 });
      await row.getByRole('button', { name: /^Resume / }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Resume shard' }).click();
      await row.getByRole('button', { name: /^Drain / }).waitFor();
      await row.getByText('healthy').waitFor({ timeout: 30_000 });
    } finally {
      await context.close();
    }
  });
});
