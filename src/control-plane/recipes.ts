import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { planChecksum } from '../recipe/checksum.js';
import type { RecipePlan } from '../recipe/plan.js';
import { RecipeNotFoundError } from './errors.js';

export interface RegisteredRecipe {
  readonly name: string;
  readonly version: number;
  readonly checksum: string;
  /** False when the same plan was registered before: its existing version is returned. */
  readonly created: boolean;
}

/**
 * Stores a validated plan as the next version of its recipe. Versions are immutable;
 * registering an identical plan again returns the version it already has, so a retried
 * registration is safe.
 */
export async function registerRecipe(
  db: Kysely<Database>,
  plan: RecipePlan,
  source?: string,
): Promise<RegisteredRecipe> {
  const checksum = planChecksum(plan);
  return db.transaction().execute(async (trx) => {
    // Serialises registrations of one recipe name, so version numbers never collide.
    await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`sous.recipe:${plan.name}`}, 0))`.execute(trx);
    const existing = await sql<{ version: number }>`
      SELECT version FROM sous.recipe WHERE name = ${plan.name} AND checksum = ${checksum}`.execute(trx);
    const found = existing.rows[0];
    if (found !== undefined) return { name: plan.name, version: found.version, checksum, created: false };
    const inserted = await sql<{ version: number }>`
      INSERT INTO sous.recipe (name, version, checksum, plan, source)
      SELECT ${plan.name}, coalesce(max(version), 0) + 1, ${checksum}, ${JSON.stringify(plan)}::jsonb, ${source ?? null}
      FROM sous.recipe WHERE name = ${plan.name}
      RETURNING version`.execute(trx);
    const version = inserted.rows[0]?.version ?? 0;
    return { name: plan.name, version, checksum, created: true };
  });
}

/** The newest registered version of a recipe. */
export async function latestVersion(db: Kysely<Database>, name: string): Promise<number> {
  const { rows } = await sql<{
    version: number | null;
  }>`SELECT max(version) AS version FROM sous.recipe WHERE name = ${name}`.execute(db);
  const version = rows[0]?.version;
  if (version === null || version === undefined) throw new RecipeNotFoundError(`no recipe named ${name} is registered`);
  return version;
}
