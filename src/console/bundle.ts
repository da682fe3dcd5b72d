import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Esbuild from 'esbuild';
import { SousError } from '../errors.js';

/*
 * The console's browser code (src/console/ui, React + urql + dagre) is bundled by esbuild
 * into one script and one stylesheet. The package build writes them to dist/console/assets
 * (scripts/build.ts), so an installed sous serves files and needs no bundler; run from
 * source (tsx, tests, npm start) no such files exist and the first request bundles them in
 * memory, so a fresh clone needs no build step before `npm test`.
 */

/** The console's assets could be neither read from the package nor bundled from source. */
export class ConsoleAssetsMissingError extends SousError {
  readonly code = 'SOUS_CONSOLE_ASSETS_MISSING';
  readonly retryable = false;
}

export interface ConsoleAssets {
  readonly js: Buffer;
  readonly css: Buffer;
}

const HERE = import.meta.dirname;
/** Where the package build writes the bundle, beside the compiled server code. */
export const BUILT_ASSETS_DIR = join(HERE, 'assets');
const ENTRY = join(HERE, 'ui', 'main.tsx');

/** Bundles the UI source with esbuild (a development dependency: only source checkouts have it). */
export async function bundleConsole(): Promise<ConsoleAssets> {
  let esbuild: typeof Esbuild;
  try {
    esbuild = await import('esbuild');
  } catch (error) {
    throw new ConsoleAssetsMissingError(
      `the console is not built (no ${BUILT_ASSETS_DIR}) and esbuild is not installed to bundle ${ENTRY}: run npm run build, or npm ci in a source checkout`,
      { cause: error },
    );
  }
  const result = await esbuild.build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    format: 'esm',
    target: 'es2022',
    minify: true,
    jsx: 'automatic',
    outdir: 'out',
    entryNames: 'console',
    legalComments: 'none',
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
  const css = result.outputFiles.find((f) => f.path.endsWith('.css'));
  if (js === undefined || css === undefined) {
    throw new ConsoleAssetsMissingError(`esbuild produced no script or stylesheet from ${ENTRY}`);
  }
  return { js: Buffer.from(js.contents), css: Buffer.from(css.contents) };
}

/** Writes the bundle to `dir` (the package build calls this with dist/console/assets). */
export async function writeConsoleAssets(dir: string): Promise<void> {
  const assets = await bundleConsole();
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'console.js'), assets.js);
  await writeFile(join(dir, 'console.css'), assets.css);
}

async function readBuilt(): Promise<ConsoleAssets | undefined> {
  try {
    return {
      js: await readFile(join(BUILT_ASSETS_DIR, 'console.js')),
      css: await readFile(join(BUILT_ASSETS_DIR, 'console.css')),
    };
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOENT') return undefined;
    throw error;
  }
}

let loading: Promise<ConsoleAssets> | undefined;

/** The built assets when the package has them, else a bundle made once per process. */
export function loadConsoleAssets(): Promise<ConsoleAssets> {
  loading ??= readBuilt().then((built) => built ?? bundleConsole());
  // A failed bundle is not cached: fixing the source and reloading tries again.
  loading.catch(() => {
    loading = undefined;
  });
  return loading;
}
