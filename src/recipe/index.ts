// Recipes: authoring (YAML, builder), validation, the plan, expressions.
export type * from './plan.js';
export { compileRecipe, recipeSchema, type RecipeAuthoring, type StepAuthoring } from './schema.js';
export { parseRecipeYaml } from './parse-yaml.js';
export { recipe, RecipeBuilder, StepsBuilder, type TaskOptions, type InputSpec } from './builder.js';
export { RecipeInvalidError, type RecipeIssue } from './errors.js';
export { ExpressionError, evaluate, evaluateCondition, evaluateInput, compileExpression } from './expressions.js';
export { planChecksum, canonicalJson } from './checksum.js';
export { parseDuration, type Duration } from './duration.js';
