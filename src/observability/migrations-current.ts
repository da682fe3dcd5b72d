import { readdir } from 'node:fs/promises';
import type { Kysely } from 'kysely';
import { MIGRATIONS_FOLDER } from '../db/migrate.js';
import type { Database } from '../db/schema.js';
import { selectAppliedMigrations } from '../store/observability.js';
import { CheckFailedError } from './errors.js';

/**
 * A readiness check: every migration this build ships is applied. Migrations applied
 * beyond those (a newer build migrated first, as in a rolling upgrade) do not make the
 * process unready: migrations only add, so the older code keeps working meanwhile.
 */
export function migrationsCurrentCheck(db: Kysely<Database>, folder: string = MIGRATIONS_FOLDER) {
  let shipped: Promise<string[]> | undefined;
  return async (): Promise<string> => {
    shipped ??= readdir(folder).then((files) =>
      files
        .filter((f) => f.endsWith('.sql'))
        .map((f) => f.replace(/\.sql$/, ''))
        .sort(),
    );
    const expected = await shipped;
    const applied = new Set(await selectAppliedMigrations(db));
    const missing = expected.filter((name) => !applied.has(name));
    if (missing.length > 0) throw new CheckFailedError(`migrations not applied: ${missing.join(', ')}`);
    return `${expected.length} applied`;
  };
}
