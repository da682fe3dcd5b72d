import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { RecipePlan } from '../recipe/plan.js';

/** A registered version's plan, or undefined when that version is not registered. */
export async function selectPlan(db: Kysely<Database>, name: string, version: number): Promise<RecipePlan | undefined> {
  const row = await db
    .selectFrom('sous.recipe')
    .select('plan')
    .where('name', '=', name)
    .where('version', '=', version)
    .executeTakeFirst();
  return row?.plan as RecipePlan | undefined;
}

/** The newest registered version of a recipe, or undefined when none is. */
export async function selectLatestVersion(db: Kysely<Database>, name: string): Promise<number | undefined> {
  const row = await db
    .selectFrom('sous.recipe')
    .select((eb) => eb.fn.max('version').as('version'))
    .where('name', '=', name)
    .executeTakeFirst();
  return row?.version ?? undefined;
}

/** The newest version of each of these recipes, in one statement; names not registered are absent. */
export async function selectLatestVersions(
  db: Kysely<Database>,
  names: readonly string[],
): Promise<Map<string, number>> {
  if (names.length === 0) return new Map();
  const { rows } = await sql<{ name: string; version: number }>`/* sous:selectLatestVersions */
    SELECT name, max(version) AS version FROM sous.recipe WHERE name = ANY(${[...names]}::text[]) GROUP BY name`.execute(
    db,
  );
  return new Map(rows.map((r) => [r.name, r.version]));
}

/** Serialises registrations of one recipe name, so version numbers never collide. */
export async function lockRecipeName(trx: Kysely<Database>, name: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`sous.recipe:${name}`}, 0))`.execute(trx);
}

/** The version a plan with this checksum was registered as, if it was. */
export async function selectVersionByChecksum(
  db: Kysely<Database>,
  name: string,
  checksum: string,
): Promise<number | undefined> {
  const row = await db
    .selectFrom('sous.recipe')
    .select('version')
    .where('name', '=', name)
    .where('checksum', '=', checksum)
    .executeTakeFirst();
  return row?.version;
}

/** Stores a plan as the next version of its recipe and returns that version. */
export async function insertNextVersion(
  trx: Kysely<Database>,
  plan: RecipePlan,
  checksum: string,
  source: string | null,
): Promise<number> {
  const { rows } = await sql<{ version: number }>`
    INSERT INTO sous.recipe (name, version, checksum, plan, source)
    SELECT ${plan.name}, coalesce(max(version), 0) + 1, ${checksum}, ${JSON.stringify(plan)}::jsonb, ${source}
    FROM sous.recipe WHERE name = ${plan.name}
    RETURNING version`.execute(trx);
  return rows[0]?.version ?? 0;
}
