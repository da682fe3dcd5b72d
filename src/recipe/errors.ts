import { SousError } from '../errors.js';

export interface RecipeIssue {
  /** Where in the recipe, e.g. `steps[2].retry.maxAttempts`. */
  readonly path: string;
  readonly message: string;
}

/** A recipe failed validation; `issues` lists every problem found, not only the first. */
export class RecipeInvalidError extends SousError {
  readonly code = 'SOUS_RECIPE_INVALID';
  readonly retryable = false;
  readonly issues: readonly RecipeIssue[];
  constructor(issues: readonly RecipeIssue[], options?: { cause?: unknown }) {
    super(`invalid recipe: ${issues.map((i) => `${i.path || '(recipe)'}: ${i.message}`).join('; ')}`, options);
    this.issues = issues;
  }
}

/** `['steps', 2, 'retry']` → `steps[2].retry`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}
