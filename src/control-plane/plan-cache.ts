import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import type { RecipePlan } from '../recipe/plan.js';
import { RecipeNotFoundError } from './errors.js';

/**
 * Registered versions never change, so a plan read once is kept for the life of the
 * process.
 */
export class PlanCache {
  readonly #plans = new Map<string, RecipePlan>();

  async get(db: Kysely<Database> | Transaction<Database>, name: string, version: number): Promise<RecipePlan> {
    const key = `${name}@${version}`;
    const cached = this.#plans.get(key);
    if (cached !== undefined) return cached;
    const { rows } = await sql<{ plan: RecipePlan }>`
      SELECT plan FROM sous.recipe WHERE name = ${name} AND version = ${version}`.execute(db);
    const plan = rows[0]?.plan;
    if (plan === undefined) throw new RecipeNotFoundError(`recipe ${name} version ${version} is not registered`);
    this.#plans.set(key, plan);
    return plan;
  }
}
