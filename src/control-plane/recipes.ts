import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { planChecksum } from '../recipe/checksum.js';
import type { RecipePlan } from '../recipe/plan.js';
import { indexPlan } from '../engine/plan-index.js';
import {
  insertNextVersion,
  lockRecipeName,
  selectLatestVersion,
  selectLatestVersions,
  selectVersionByChecksum,
} from '../store/recipes.js';
import { auditedTransaction, type AuditHook } from '../store/audit.js';
import { RecipeNotFoundError } from './errors.js';
import { assertResidencyKept } from '../regions/residency-check.js';

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
 * registration is safe. With `region` (this control plane's, when it runs with regions),
 * a plan handing a resident output to a step of another region is refused
 * (ResidencyConflictError) before anything is written.
 */
export async function registerRecipe(
  db: Kysely<Database>,
  plan: RecipePlan,
  source?: string,
  region?: string,
  audit?: AuditHook,
): Promise<RegisteredRecipe> {
  assertResidencyKept(plan, region);
  const checksum = planChecksum(plan);
  return auditedTransaction(db, audit, async (trx) => {
    await lockRecipeName(trx, plan.name);
    const found = await selectVersionByChecksum(trx, plan.name, checksum);
    if (found !== undefined) return { name: plan.name, version: found, checksum, created: false };
    const version = await insertNextVersion(trx, plan, checksum, source ?? null);
    return { name: plan.name, version, checksum, created: true };
  });
}

/** The newest registered version of a recipe. */
export async function latestVersion(db: Kysely<Database>, name: string): Promise<number> {
  const version = await selectLatestVersion(db, name);
  if (version === undefined) throw new RecipeNotFoundError(`no recipe named ${name} is registered`);
  return version;
}

/**
 * What a new execution of `plan` fixes for its sub-recipe steps that name no version: the
 * newest version of each registered now (a sub-recipe not registered yet is left out, and
 * its step takes the newest version when it starts, or fails then). Undefined when no step
 * needs one.
 */
export async function subRecipeVersions(
  db: Kysely<Database>,
  plan: RecipePlan,
): Promise<Readonly<Record<string, number>> | undefined> {
  const names = new Set<string>();
  for (const { step } of indexPlan(plan).values()) {
    if (step.type === 'subRecipe' && step.version === undefined) names.add(step.recipe);
  }
  if (names.size === 0) return undefined;
  const versions = await selectLatestVersions(db, [...names]);
  return versions.size === 0 ? undefined : Object.fromEntries(versions);
}
