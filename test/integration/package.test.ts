import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

/*
 * What a service team does: pack sous, install the tarball into a project of its own and
 * import it with plain `node` (no tsx, no TypeScript loader), and compile a strict TypeScript
 * consumer against the shipped declarations. Nothing of this repository is on that project's
 * module path but what the tarballs hold and the registry's dependencies.
 */

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const NPM = 'npm';
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

interface PackedFile {
  readonly path: string;
}
interface Packed {
  readonly filename: string;
  readonly files: readonly PackedFile[];
}

async function npm(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(NPM, args, { cwd, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

async function pack(dir: string, ...args: string[]): Promise<Packed> {
  const out = await npm(ROOT, 'pack', '--ignore-scripts', '--json', '--pack-destination', dir, ...args);
  const packed = JSON.parse(out) as Packed[];
  assert.equal(packed.length, 1);
  return packed[0] as Packed;
}

/** Installs tarballs into a fresh ESM project, as a service would. */
async function freshProject(dir: string, tarballs: string[]): Promise<void> {
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await npm(dir, 'install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs);
}

async function nodeEval(cwd: string, code: string): Promise<string> {
  // process.execPath: the Node this suite runs on, with no loader of ours (tsx) in it.
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], {
    cwd,
    env: { PATH: process.env.PATH ?? '' },
  });
  return stdout.trim();
}

describe('the packages a service installs', { timeout: 600_000 }, () => {
  let work: string;
  let sous: Packed;
  let worker: Packed;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'sous-pack-'));
    await run(process.execPath, [join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'scripts/build.ts'], {
      cwd: ROOT,
    });
    sous = await pack(work);
    worker = await pack(work, '--workspace', '@sous/worker');
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('ship compiled JavaScript, declarations, the migrations and a licence, and nothing of the repository beside', () => {
    const files = sous.files.map((f) => f.path);
    for (const expected of [
      'LICENSE',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/worker/index.js',
      'dist/worker/index.d.ts',
      'dist/recipe/index.js',
      'dist/recipe/index.d.ts',
      'dist/api/schema.graphql',
      'dist/console/assets/console.js',
      'dist/console/assets/console.css',
      'dist/worker/sql/exactly-once.sql',
      'migrations/0001_outbox.sql',
      'connectors/pom.xml',
      'connectors/outbox-connector.json',
    ]) {
      assert.ok(files.includes(expected), `sous tarball lacks ${expected}`);
    }
    const stray = files.filter(
      (f) => /^(src|test|bench|chaos|scripts|examples|\.ci)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')),
    );
    assert.deepEqual(stray, [], 'sous tarball ships sources or repository tooling');

    const workerFiles = worker.files.map((f) => f.path);
    for (const expected of [
      'LICENSE',
      'dist/worker/index.js',
      'dist/worker/index.d.ts',
      'dist/worker/sql/exactly-once.sql',
    ]) {
      assert.ok(workerFiles.includes(expected), `@sous/worker tarball lacks ${expected}`);
    }
    assert.ok(
      !workerFiles.some((f) => /^dist\/(api|control-plane|engine|recipe|stack|db)\//.test(f)),
      '@sous/worker ships server code',
    );
  });

  it('@sous/worker installs without the server dependencies and imports with plain node', async () => {
    const dir = join(work, 'worker-service');
    await rm(dir, { recursive: true, force: true });
    await (await import('node:fs/promises')).mkdir(dir);
    await freshProject(dir, [join(work, worker.filename)]);

    const installed = await readdir(join(dir, 'node_modules'));
    for (const serverOnly of ['fastify', 'mercurius', 'graphile-worker', 'graphql', 'jsonata']) {
      assert.ok(!installed.includes(serverOnly), `a worker-only service got ${serverOnly}`);
    }
    assert.ok(installed.includes('kafkajs'));

    const names = await nodeEval(
      dir,
      "const m = await import('@sous/worker'); console.log([typeof m.createWorker, typeof m.defineCapability, typeof m.terminalError].join(','));",
    );
    assert.equal(names, 'function,function,function');

    // A strict TypeScript service compiles against the shipped declarations, and its output runs.
    await writeFile(
      join(dir, 'service.ts'),
      [
        "import { createWorker, defineCapability, terminalError, type StepContext, type WorkerOptions } from '@sous/worker';",
        "import { z } from 'zod';",
        "const charge = defineCapability({ name: 'payments.charge', input: z.object({ cents: z.number() }), output: z.object({ ok: z.boolean() }),",
        '  handler: async (input: { cents: number }, _ctx: StepContext) => {',
        "    if (input.cents < 0) throw terminalError('negative', 'a charge cannot be negative');",
        '    return { ok: true };',
        '  },',
        '});',
        "const options: WorkerOptions = { brokers: ['127.0.0.1:1'], capabilities: [charge] };",
        'export const make = () => createWorker(options);',
        "console.log('compiled', typeof make);",
        '',
      ].join('\n'),
    );
    await writeFile(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2023',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: false,
          noUncheckedIndexedAccess: true,
          exactOptionalPropertyTypes: true,
          outDir: 'out',
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
        },
        files: ['service.ts'],
      }),
    );
    await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: dir }).catch((error: unknown) => {
      const out = error as { stdout?: string; stderr?: string };
      assert.fail(`the strict consumer does not compile:\n${out.stdout ?? ''}${out.stderr ?? ''}`);
    });
    const { stdout } = await run(process.execPath, [join(dir, 'out', 'service.js')], { cwd: dir });
    assert.equal(stdout.trim(), 'compiled function');
  });

  it('sous installs and its entries import with plain node', async () => {
    const dir = join(work, 'control-plane');
    await (await import('node:fs/promises')).mkdir(dir);
    await freshProject(dir, [join(work, sous.filename)]);
    const out = await nodeEval(
      dir,
      [
        "const sous = await import('sous');",
        "const recipe = await import('sous/recipe');",
        "const worker = await import('sous/worker');",
        'console.log([typeof sous.createControlPlane, typeof sous.buildApi, typeof recipe.parseRecipeYaml, typeof worker.createWorker].join(","));',
      ].join('\n'),
    );
    assert.equal(out, 'function,function,function,function');
    // The migrations the control plane applies are found from the installed package.
    const migrations = await nodeEval(dir, "const m = await import('sous'); console.log(m.MIGRATIONS_FOLDER);");
    assert.ok(existsSync(join(migrations, '0001_outbox.sql')), `no migrations at ${migrations}`);
    const manifest = JSON.parse(await readFile(join(dir, 'node_modules', 'sous', 'package.json'), 'utf8')) as {
      engines: { node: string };
    };
    assert.match(manifest.engines.node, />=\s*2[2-9]/);
    // The console is served from the bundle the package ships: no bundler is installed here.
    const consoleJs = await nodeEval(
      dir,
      [
        "const { loadConsoleAssets } = await import('./node_modules/sous/dist/console/bundle.js');",
        'const assets = await loadConsoleAssets();',
        'console.log(assets.js.length > 1000 && assets.css.length > 100);',
      ].join('\n'),
    );
    assert.equal(consoleJs, 'true');
    assert.ok(!existsSync(join(dir, 'node_modules', 'esbuild')), 'esbuild is not a runtime dependency');
  });
});
