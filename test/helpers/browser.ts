import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/*
 * The browser tests drive the machine's Chromium (Debian's `chromium` package) through
 * playwright-core, which downloads no browser of its own. SOUS_CHROMIUM names another
 * binary; otherwise the usual names are looked up on PATH.
 */

const NAMES = ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome'];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The Chromium binary to drive; a clear error naming what is missing otherwise. */
export function findChromium(): string {
  const given = process.env.SOUS_CHROMIUM;
  if (given !== undefined && given !== '') {
    if (!executable(given)) throw new Error(`SOUS_CHROMIUM=${given} is not an executable file`);
    return given;
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '');
  for (const dir of [...dirs, '/usr/bin', '/usr/local/bin']) {
    for (const name of NAMES) {
      const path = join(dir, name);
      if (executable(path)) return path;
    }
  }
  throw new Error(
    `no Chromium found (looked for ${NAMES.join(', ')} on PATH): install Debian's package with ` +
      '`apt-get install -y chromium` (.ci/run does), or set SOUS_CHROMIUM to a Chromium binary',
  );
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: findChromium(),
    headless: true,
    // Root in a container has no user namespace for Chromium's sandbox.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}
