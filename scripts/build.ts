import { cp, readdir, readFile, rm } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { execFileSync } from 'node:child_process';
import { writeConsoleAssets } from '../src/console/bundle.js';

/*
 * Builds the two packages of this repository from the one source tree in src/:
 * - `sous` (dist/): control plane, API, CLI, recipes, and the worker SDK;
 * - `@sous/worker` (packages/worker/dist/): only the worker SDK and what it imports, so a
 *   service that runs workers installs neither the server's code nor its dependencies.
 * tsc follows imports from src/worker/index.ts, so the worker build holds exactly the SDK's
 * import closure. Then the files tsc does not copy (GraphQL schema, SQL, assets) are copied,
 * and the worker package is checked: every package its code imports is one of its
 * dependencies, at the same range as the root's.
 */

const ROOT = join(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');
const WORKER_PACKAGE = join(ROOT, 'packages', 'worker');
const CONSOLE_UI = join('console', 'ui') + '/';

function tsc(project: string): void {
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], {
    cwd: ROOT,
    stdio: 'inherit',
  });
}

/** Every file under `dir`, as paths relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)));
}

/** Copies the non-TypeScript files of src (or of `only` inside it) into `outDir`. */
async function copyAssets(outDir: string, only?: string): Promise<void> {
  for (const file of await filesUnder(SRC)) {
    if (file.endsWith('.ts')) continue;
    // The console's browser source is bundled below, not shipped as it is.
    if (file.startsWith(CONSOLE_UI)) continue;
    if (only !== undefined && !file.startsWith(`${only}/`)) continue;
    await cp(join(SRC, file), join(outDir, file));
  }
}

/** The bare package names imported by the .js files under `dir`. */
async function importedPackages(dir: string): Promise<Set<string>> {
  const found = new Set<string>();
  const builtins = new Set(builtinModules);
  for (const file of await filesUnder(dir)) {
    if (!file.endsWith('.js')) continue;
    const text = await readFile(join(dir, file), 'utf8');
    for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*'([^'.][^']*)'/g)) {
      if (spec === undefined || spec.startsWith('node:') || builtins.has(spec)) continue;
      const parts = spec.split('/');
      found.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? spec));
    }
  }
  return found;
}

interface Manifest {
  readonly dependencies?: Record<string, string>;
}

async function checkWorkerDependencies(): Promise<void> {
  const root = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as Manifest;
  const worker = JSON.parse(await readFile(join(WORKER_PACKAGE, 'package.json'), 'utf8')) as Manifest;
  const problems: string[] = [];
  for (const name of await importedPackages(join(WORKER_PACKAGE, 'dist'))) {
    const range = worker.dependencies?.[name];
    if (range === undefined) problems.push(`imports ${name}, which is not among its dependencies`);
    else if (root.dependencies?.[name] !== range) {
      problems.push(`depends on ${name}@${range}, the root package on ${root.dependencies?.[name] ?? 'nothing'}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`packages/worker/package.json is out of step with the code:\n  ${problems.join('\n  ')}`);
  }
}

await rm(join(ROOT, 'dist'), { recursive: true, force: true });
await rm(join(WORKER_PACKAGE, 'dist'), { recursive: true, force: true });
tsc('tsconfig.build.json');
await copyAssets(join(ROOT, 'dist'));
// The operator console's script and stylesheet, served from the package (dist/console/assets).
await writeConsoleAssets(join(ROOT, 'dist', 'console', 'assets'));
tsc('tsconfig.worker.json');
await copyAssets(join(WORKER_PACKAGE, 'dist'), 'worker');
await checkWorkerDependencies();
console.log('[build] dist/ (sous) and packages/worker/dist/ (@sous/worker) built');
