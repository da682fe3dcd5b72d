import { z } from 'zod';

/**
 * The environment variables `schema` reads, validated. When any is invalid it throws the
 * error `invalid` makes of one message naming every bad variable, so a person fixes them
 * all at once: `<prefix>: SOUS_A: <problem>; SOUS_B: <problem>`.
 */
export function parseEnvironment<S extends z.ZodType>(
  schema: S,
  env: NodeJS.ProcessEnv,
  prefix: string,
  invalid: (message: string, options: { cause: unknown }) => Error,
): z.output<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw invalid(`${prefix}: ${problems.join('; ')}`, { cause: parsed.error });
  }
  return parsed.data;
}

/**
 * A whole-number variable, `fallback` when unset, from `min` (to `max`, when given). The
 * messages, which name the variable, say what it must be when it is not a number, not
 * whole, or out of range.
 */
export function integerVariable(
  fallback: number,
  rule: { min: number; max?: number; notANumber: string; notWhole: string; outOfRange: string },
) {
  const atLeastMin = z.coerce.number({ error: rule.notANumber }).int(rule.notWhole).min(rule.min, rule.outOfRange);
  return (rule.max === undefined ? atLeastMin : atLeastMin.max(rule.max, rule.outOfRange)).default(fallback);
}
