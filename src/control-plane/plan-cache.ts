import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import type { RecipePlan } from '../recipe/plan.js';
import { selectPlan } from '../store/recipes.js';
import { RecipeNotFoundError } from './errors.js';

/**
 * Registered versions never change, so a plan read once is kept for the life of the
 * process.
 */
export class PlanCache {
  readonly #plans = new Map<string, RecipePlan>();

  async get(db: Kysely<Database>, name: string, version: number): Promise<RecipePlan> {
    const key = `${name}@${version}`;
    const cached = this.#plans.get(key);
    if (cached !== undefined) return cached;
    const plan = await selectPlan(db, name, version);
    if (plan === undefined) throw new RecipeNotFoundError(`recipe ${name} version ${version} is not registered`);
    this.#plans.set(key, plan);
    return plan;
  }

  /** A plan already read, without a query (metrics name a step's capability from it). */
  peek(name: string, version: number): RecipePlan | undefined {
    return this.#plans.get(`${name}@${version}`);
  }
}
