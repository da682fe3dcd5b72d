import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { authenticate, createApiToken } from './auth.js';
import { UnauthenticatedError } from './errors.js';

export interface StoredToken {
  readonly token: string;
  /** True when a new token was minted (none was stored, or the stored one is revoked or not admin). */
  readonly created: boolean;
}

async function readStored(file: string): Promise<string | undefined> {
  try {
    const text = (await readFile(file, 'utf8')).trim();
    return text === '' ? undefined : text;
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * The admin token kept in `file` (the stack's folder, for `npm start`): reused while it
 * is a live admin token of this database, otherwise a new one is minted and stored
 * (readable by its owner only). Each start used to mint a token and leave the previous
 * ones behind; now a developer keeps one token across runs, and a stack rebuilt from
 * scratch (whose database no longer knows the stored token) gets a new one.
 */
export async function storedAdminToken(db: Kysely<Database>, file: string, purpose: string): Promise<StoredToken> {
  const stored = await readStored(file);
  if (stored !== undefined) {
    try {
      const caller = await authenticate(db, `Bearer ${stored}`);
      if (caller.role === 'admin') return { token: stored, created: false };
    } catch (error) {
      if (!(error instanceof UnauthenticatedError)) throw error;
    }
  }
  const minted = await createApiToken(db, `${purpose}-${randomBytes(4).toString('hex')}`, 'admin', purpose);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${minted.token}\n`, { mode: 0o600 });
  return { token: minted.token, created: true };
}
