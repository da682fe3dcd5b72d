// The sous CLI as a person or a script runs it: a child process against a control plane and
// API this test starts on the real stack. It registers and starts a recipe that a worker
// runs, shows the step table, bulk-reprocesses dead letters through the DLT reprocessing
// job, and gives the documented exit codes for bad usage, bad tokens and refusals.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { z } from 'zod';
import { createApiToken } from '../../src/api/auth.js';
import type { ControlPlane } from '../../src/control-plane/control-plane.js';
import { kafkaBrokers } from '../../src/stack/config.js';
import { createWorker, defineCapability, type Worker } from '../../src/worker/index.js';
import { startTestApi } from '../helpers/api.js';
import { stackConfig, uniqueName } from '../helpers/stack.js';

const ns = uniqueName('cli').replaceAll('-', '');
const cap = (name: string) => `test${ns}.${name}`;
const dir = mkdtempSync(join(tmpdir(), 'sous-cli-'));
let cp: ControlPlane & { replyTopic: string };
let apiUrl: string;
const tokens = { admin: '', operator: '', viewer: '' };
const cleanup: (() => Promise<unknown>)[] = [];

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `sous <args>` as a child process (asynchronously: the API it calls is served by
 * this process). No config file, the stack's ports from this environment.
 */
function sous(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join('src', 'cli', 'main.ts'), ...args], {
      cwd: stackConfig.root,
      env: {
        ...process.env,
        SOUS_CONFIG: join(dir, 'no-config.json'),
        SOUS_API_URL: apiUrl,
        SOUS_TOKEN: tokens.operator,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a command that must succeed (exit 0), returning its output. */
async function ok(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const run = await sous(args, env);
  assert.equal(run.code, 0, `sous ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
  return run;
}

async function okJson<T>(args: string[], env: Record<string, string | undefined> = {}): Promise<T> {
  return JSON.parse((await ok([...args, '--json'], env)).stdout) as T;
}

function recipeFile(name: string, yaml: string): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, yaml);
  return path;
}

interface ExecutionJson {
  id: string;
  status: string;
  output: unknown;
  steps: { key: string; status: string; attemptCount: number; attempts: { status: string }[] }[];
}

/** Polls in-process (a CLI child per poll is too slow on a loaded machine). */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(300);
  }
}

before(async () => {
  ({ controlPlane: cp, url: apiUrl } = await startTestApi(ns, cleanup));
});

after(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
});

describe('the sous CLI', () => {
  it('creates the first admin token on the local stack, then tokens through the API', async () => {
    const admin = await ok(['token', 'create', uniqueName('test-cli-admin'), '--role', 'admin', '--local'], {
      SOUS_TOKEN: undefined,
    });
    tokens.admin = admin.stdout.trim();
    assert.match(tokens.admin, /^sous_[\w-]{20,}$/, 'the secret alone on stdout');
    const operatorName = uniqueName('test-cli-operator');
    const doomed = uniqueName('test-cli-doomed');
    const doomedToken = (await createApiToken(cp.db, doomed, 'viewer', 'cli.test')).token;
    const [created, viewer, revoked] = await Promise.all([
      okJson<{ name: string; role: string; token: string }>(['token', 'create', operatorName, '--role', 'operator'], {
        SOUS_TOKEN: tokens.admin,
      }),
      ok(['--token', tokens.admin, 'token', 'create', uniqueName('test-cli-viewer'), '--role', 'viewer']),
      ok(['token', 'revoke', doomed], { SOUS_TOKEN: tokens.admin }),
    ]);
    assert.equal(created.name, operatorName);
    assert.equal(created.role, 'operator');
    tokens.operator = created.token;
    tokens.viewer = viewer.stdout.trim();
    assert.equal(revoked.stdout, `revoked ${doomed}\n`);
    // A revoked token stops working at once: exit 3.
    const refused = await sous(['recipe', 'list'], { SOUS_TOKEN: doomedToken });
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /unknown or revoked.*SOUS_TOKEN.*\[SOUS_UNAUTHENTICATED\]/);
  });

  it('registers a recipe, starts it, a worker runs it, and executions show prints the step table', async () => {
    const name = `${ns}.greet`;
    const file = recipeFile(
      'greet',
      `name: ${name}
steps:
  - id: hello
    capability: ${cap('hello')}
    input: { who: input.who }
  - id: shout
    capability: ${cap('shout')}
    input: { text: outputs.hello }
output: outputs.shout
`,
    );
    const registered = await ok(['recipe', 'register', file], { SOUS_TOKEN: tokens.admin });
    assert.match(
      registered.stdout,
      new RegExp(`^registered ${name.replaceAll('.', '\\.')} v1 \\(checksum [0-9a-f]{12}\\)`),
    );
    const worker: Worker = createWorker({
      brokers: kafkaBrokers(stackConfig),
      groupId: uniqueName('test-cli-workers'),
      handleSignals: false,
      capabilities: [
        defineCapability({
          name: cap('hello'),
          input: z.object({ who: z.string() }),
          output: z.string(),
          handler: async ({ who }) => `hello ${who}`,
        }),
        defineCapability({
          name: cap('shout'),
          input: z.object({ text: z.string() }),
          output: z.string(),
          handler: async ({ text }) => text.toUpperCase(),
        }),
      ],
    });
    await worker.start();
    cleanup.push(() => worker.stop());

    const [again, recipes, shown, started] = await Promise.all([
      ok(['recipe', 'register', file], { SOUS_TOKEN: tokens.admin }),
      okJson<{ name: string; latestVersion: number }[]>(['recipe', 'list']),
      ok(['recipe', 'show', name]),
      // --wait follows it to the end with plain progress lines (stderr is not a terminal).
      ok(['start', name, '--input', '{"who": "ada"}', '--wait', '--idempotency-key', ns]),
    ]);
    assert.match(again.stdout, /v1 unchanged/);
    assert.equal(recipes.find((r) => r.name === name)?.latestVersion, 1);
    assert.match(shown.stdout, new RegExp(`capability: ${cap('hello').replaceAll('.', '\\.')}`), 'the YAML source');
    const id = /started execution ([0-9a-f-]{36})/.exec(started.stdout)?.[1];
    assert.ok(id, started.stdout);
    assert.doesNotMatch(started.stderr, /\r/, 'no carriage returns when not a terminal');
    assert.match(started.stderr, new RegExp(`execution ${id}: COMPLETED, 2/2 steps done\\n$`));

    const [same, show, json, listed] = await Promise.all([
      okJson<{ created: boolean; execution: { id: string } }>([
        'start',
        name,
        '--input',
        '{"who": "ada"}',
        '--idempotency-key',
        ns,
      ]),
      ok(['executions', 'show', id]),
      okJson<ExecutionJson>(['executions', 'show', id]),
      okJson<{ executions: { id: string; status: string }[] }>([
        'executions',
        'list',
        '--recipe',
        name,
        '--status',
        'completed',
      ]),
    ]);
    assert.deepEqual([same.created, same.execution.id], [false, id], 'the same key, the same execution');
    assert.match(show.stdout, /^status\s+COMPLETED$/m);
    assert.match(show.stdout, /^output\s+HELLO ADA$/m);
    const header = show.stdout.split('\n').find((l) => l.startsWith('STEP'));
    assert.match(
      header ?? '',
      /^STEP\s+KIND\s+STATUS\s+ATTEMPTS\s+STARTED\s+DURATION\s+LAST ATTEMPT\s+WORKER\s+ERROR$/,
    );
    for (const step of ['hello', 'shout']) {
      assert.match(
        show.stdout,
        new RegExp(
          `^${step}\\s+task\\s+completed\\s+1\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ\\s+[\\d.]+m?s\\s+[\\d.]+m?s\\s+\\S+`,
          'm',
        ),
      );
    }
    assert.deepEqual(
      json.steps.map((s) => [s.key, s.status, s.attemptCount]),
      [
        ['hello', 'completed', 1],
        ['shout', 'completed', 1],
      ],
    );
    assert.deepEqual(
      listed.executions.map((e) => [e.id, e.status]),
      [[id, 'COMPLETED']],
    );
  });

  it('bulk-reprocesses dead-lettered commands through the DLT reprocessing job; the executions complete', async () => {
    const capability = cap('ship');
    const name = `${ns}.ship`;
    const yaml = `name: ${name}
steps:
  - id: ship
    capability: ${capability}
    input: { address: input.address }
output: outputs.ship
`;
    await ok(['recipe', 'register', recipeFile('ship', yaml)], { SOUS_TOKEN: tokens.admin });
    const groupId = uniqueName('test-cli-ship');
    const ship = (accepts: z.ZodType<string | number>) =>
      createWorker({
        brokers: kafkaBrokers(stackConfig),
        groupId,
        handleSignals: false,
        capabilities: [
          defineCapability({
            name: capability,
            input: z.object({ address: accepts }),
            output: z.object({ shipped: z.string() }),
            handler: async ({ address }) => ({ shipped: String(address) }),
          }),
        ],
      });
    // A strict worker: numeric addresses fail validation and are dead-lettered.
    let worker = ship(z.string());
    await worker.start();
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        ids.push((await cp.startExecution({ recipe: name, input: { address: i } })).executionId);
      }
      const pending = async () =>
        Number(
          (
            await sql<{ n: string }>`SELECT count(*) AS n FROM sous.dead_letter
              WHERE execution_id = ANY(${ids}::uuid[]) AND status = 'pending'`.execute(cp.db)
          ).rows[0]?.n,
        );
      await until('5 dead letters ingested', async () => (await pending()) === 5);

      const [letters, table, viewer, nothing] = await Promise.all([
        okJson<{ errorCode: string; executionId: string }[]>(['dlt', 'list', '--capability', capability]),
        ok(['dlt', 'list', '--capability', capability]),
        // A viewer may not start the job (exit 3, audited as denied); nothing selected is a usage error.
        sous(['dlt', 'reprocess', '--capability', capability], { SOUS_TOKEN: tokens.viewer }),
        sous(['dlt', 'reprocess']),
      ]);
      assert.deepEqual(letters.map((l) => l.executionId).sort(), [...ids].sort());
      assert.ok(letters.every((l) => l.errorCode === 'input_invalid'));
      assert.match(table.stdout, /^ID\s+STATUS\s+CAPABILITY\s+ERROR\s+EXECUTION/);
      assert.match(table.stdout, new RegExp(`pending\\s+${capability.replaceAll('.', '\\.')}\\s+input_invalid`));
      assert.equal(viewer.code, 3, viewer.stderr);
      assert.match(viewer.stderr, /needs the operator role.*\[SOUS_FORBIDDEN\]/);
      assert.equal(nothing.code, 2);
      assert.match(nothing.stderr, /give dead-letter ids, a filter .* or --all/);

      // Fix the worker (same group: it takes over), then reprocess them all as one job.
      await worker.stop();
      worker = ship(z.union([z.string(), z.number()]));
      await worker.start();
      const run = await ok(['dlt', 'reprocess', '--capability', capability, '--batch-size', '2']);
      const jobId = /\(job ([0-9a-f-]{36})\)/.exec(run.stdout)?.[1];
      assert.ok(jobId, run.stdout);
      assert.match(run.stdout, /^reprocessed 5 of 5 dead letters/);
      assert.doesNotMatch(run.stderr, /\r/);
      assert.match(
        run.stderr.trim().split('\n').at(-1) ?? '',
        new RegExp(`^dead-letter job ${jobId}: \\[#+\\] 100% 5/5 \\(5 reprocessed, 0 failed\\) COMPLETED$`),
      );

      await until('the executions complete', async () => {
        const { rows } = await sql<{ status: string }>`
          SELECT status FROM sous.execution WHERE id = ANY(${ids}::uuid[])`.execute(cp.db);
        return rows.every((r) => r.status === 'completed');
      });
      const [job, jobs, empty] = await Promise.all([
        okJson<{ state: string; total: number; done: number; failed: number; batchSize: number }>([
          'dlt',
          'job',
          jobId,
        ]),
        okJson<{ id: string }[]>(['dlt', 'jobs']),
        // Nothing is pending any more: a job over the same filter takes on nothing.
        ok(['dlt', 'reprocess', '--capability', capability]),
      ]);
      assert.deepEqual([job.state, job.total, job.done, job.failed, job.batchSize], ['COMPLETED', 5, 5, 0, 2]);
      assert.ok(jobs.some((j) => j.id === jobId));
      assert.match(empty.stdout, /^reprocessed 0 of 0 dead letters/);
      const outputs = await sql<{ id: string; output: unknown }>`
        SELECT id, output FROM sous.execution WHERE id = ANY(${ids}::uuid[])`.execute(cp.db);
      for (const row of outputs.rows) assert.deepEqual(row.output, { shipped: String(ids.indexOf(row.id)) });
      const rows = await sql<{ reprocess_count: number; status: string }>`
        SELECT reprocess_count, status FROM sous.dead_letter WHERE execution_id = ANY(${ids}::uuid[])`.execute(cp.db);
      assert.deepEqual(
        rows.rows.map((r) => [r.status, r.reprocess_count]),
        ids.map(() => ['reprocessed', 1]),
        'each dead letter published once',
      );
      const audit = await sql<{ outcome: string; role: string }>`
        SELECT outcome, role FROM sous.audit_log
        WHERE operation = 'startDeadLetterJob' AND arguments->'filter'->>'capability' = ${capability}
        ORDER BY id`.execute(cp.db);
      assert.deepEqual(
        audit.rows.map((r) => [r.role, r.outcome]),
        [
          ['viewer', 'denied'],
          ['operator', 'ok'],
          ['operator', 'ok'],
        ],
      );
    } finally {
      await worker.stop();
    }
  });

  it('gives the documented exit codes: 2 for usage, 3 for unreachable or refused tokens, 1 for refusals', async () => {
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ apiUrl, token: tokens.viewer }));
    const [missing, unknown, notJson, badToken, noToken, unreachable, viaFile, unknownExecution, invalidId] =
      await Promise.all([
        sous(['executions', 'show']),
        sous(['frobnicate']),
        sous(['start', 'x', '--input', '{not json']),
        sous(['executions', 'list'], { SOUS_TOKEN: 'sous_not-a-real-token' }),
        sous(['executions', 'list'], { SOUS_TOKEN: undefined }),
        sous(['executions', 'list'], { SOUS_API_URL: 'http://127.0.0.1:9/graphql' }),
        // The config file is read when the environment says nothing.
        sous(['recipe', 'list', '--json'], { SOUS_CONFIG: config, SOUS_API_URL: undefined, SOUS_TOKEN: undefined }),
        sous(['cancel', randomUUID()]),
        sous(['pause', 'not-a-uuid']),
      ]);
    for (const run of [missing, unknown, notJson]) {
      assert.equal(run.code, 2, run.stderr);
      assert.equal(run.stdout, '');
    }
    assert.match(missing.stderr, /missing required argument 'id'/);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    assert.match(notJson.stderr, /not JSON .*quote it/);
    assert.equal(badToken.code, 3);
    assert.match(badToken.stderr, /SOUS_UNAUTHENTICATED/);
    assert.equal(noToken.code, 3);
    assert.match(noToken.stderr, /no API token: set SOUS_TOKEN/);
    assert.equal(unreachable.code, 3);
    assert.match(
      unreachable.stderr,
      /cannot reach the sous API at http:\/\/127\.0\.0\.1:9\/graphql \((ECONNREFUSED|fetch failed)\)/,
    );
    assert.equal(viaFile.code, 0, viaFile.stderr);
    assert.ok(Array.isArray(JSON.parse(viaFile.stdout)));
    assert.equal(unknownExecution.code, 1, unknownExecution.stderr);
    assert.match(unknownExecution.stderr, /no execution/);
    assert.equal(invalidId.code, 2, invalidId.stderr);
    assert.match(invalidId.stderr, /SOUS_INVALID_ARGUMENT/);
  });

  it('lists shards, drains one and resumes it; a shard no one knows is a refusal naming it', async () => {
    const capability = cap('sharded');
    const worker = createWorker({
      brokers: kafkaBrokers(stackConfig),
      groupId: uniqueName('test-cli-shards'),
      workerId: uniqueName('cli-shard'),
      region: 'eu-west',
      heartbeatIntervalMs: 500,
      handleSignals: false,
      capabilities: [
        defineCapability({ name: capability, input: z.object({}), output: z.object({}), handler: async () => ({}) }),
      ],
    });
    await worker.start();
    cleanup.push(() => worker.stop());
    let listed: { id: string; region: string; health: string; capabilities: { name: string; version: number }[] }[] =
      [];
    for (let i = 0; i < 50 && listed.length === 0; i++) {
      listed = await okJson(['shards', 'list', '--capability', capability]);
      if (listed.length === 0) await sleep(200);
    }
    assert.deepEqual(
      listed.map((s) => [s.id, s.region, s.health, s.capabilities]),
      [[worker.workerId, 'eu-west', 'HEALTHY', [{ name: capability, version: 1 }]]],
    );
    const table = await ok(['shards', 'list', '--region', 'eu-west']);
    assert.match(table.stdout, new RegExp(`${worker.workerId}.*eu-west.*healthy`));
    const drained = await ok(['shards', 'drain', worker.workerId]);
    assert.match(drained.stdout, /drain requested/);
    for (let i = 0; i < 100 && worker.health() !== 'draining'; i++) await sleep(100);
    assert.equal(worker.health(), 'draining');
    await ok(['shards', 'resume', worker.workerId]);
    for (let i = 0; i < 100 && worker.health() !== 'healthy'; i++) await sleep(100);
    assert.equal(worker.health(), 'healthy');
    const unknown = await sous(['shards', 'drain', 'no-such-shard']);
    assert.equal(unknown.code, 1, unknown.stderr);
    assert.match(unknown.stderr, /no live shard "no-such-shard".*SOUS_SHARD_NOT_FOUND/);
  });
});
