import jsonata from 'jsonata';
import { SousError } from '../errors.js';
import type { Expression, ExpressionScope, InputMapping } from './plan.js';

/** Evaluating an expression failed (syntax, a runtime error, or the time limit). */
export class ExpressionError extends SousError {
  readonly code = 'SOUS_EXPRESSION_FAILED';
  readonly retryable = false;
}

/**
 * Bounds of every evaluation. An expression runs inside its execution's decision, with
 * the execution locked, so one that loops or recurses must stop with an error (the
 * step fails, naming it) instead of holding the lock: JSONata's own guardrails bound its
 * time, recursion depth and the sequences it builds; the result's JSON size is checked
 * after.
 */
export const EXPRESSION_LIMITS = {
  /** Wall time of one evaluation, ms. */
  timeoutMs: 500,
  /** Depth of nested evaluation (recursive functions). */
  maxDepth: 500,
  /** Items of one sequence it builds; a forEach's list is one. */
  maxSequence: 1_000_000,
  /** JSON size of its result, bytes (larger inputs travel by reference, but are built here first). */
  maxResultBytes: 16 * 1024 * 1024,
} as const;

type Compiled = ReturnType<typeof jsonata>;
const compiled = new Map<string, Compiled>();

/** Parses JSONata once per source text. */
export function compileExpression(source: Expression): Compiled {
  let expression = compiled.get(source);
  if (expression === undefined) {
    try {
      expression = jsonata(source, {
        timeout: EXPRESSION_LIMITS.timeoutMs,
        stack: EXPRESSION_LIMITS.maxDepth,
        sequence: EXPRESSION_LIMITS.maxSequence,
      });
    } catch (error) {
      throw new ExpressionError(`expression ${JSON.stringify(source)} does not parse: ${messageOf(error)}`, {
        cause: error,
      });
    }
    compiled.set(source, expression);
  }
  return expression;
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null && 'message' in error) return String(error.message);
  return String(error);
}

/** Evaluates JSONata against the scope; never `eval`. */
export async function evaluate(source: Expression, scope: ExpressionScope): Promise<unknown> {
  const expression = compileExpression(source);
  let value: unknown;
  try {
    value = await expression.evaluate(scope);
  } catch (error) {
    throw new ExpressionError(`expression ${JSON.stringify(source)} failed: ${messageOf(error)}`, { cause: error });
  }
  if (value === undefined) return undefined;
  // Plain JSON out: JSONata builds null-prototype objects and flags its arrays.
  const text = JSON.stringify(value);
  if (text.length > EXPRESSION_LIMITS.maxResultBytes) {
    throw new ExpressionError(
      `expression ${JSON.stringify(source)} failed: its result is ${text.length} bytes of JSON, over the limit of ${EXPRESSION_LIMITS.maxResultBytes}`,
    );
  }
  return JSON.parse(text) as unknown;
}

/** JSONata truthiness; an undefined result is false. */
export async function evaluateCondition(source: Expression, scope: ExpressionScope): Promise<boolean> {
  const value = await evaluate(source, scope);
  if (Array.isArray(value)) return value.length > 0;
  return Boolean(value);
}

/** A step's input from its mapping: `{}` without one. */
export async function evaluateInput(mapping: InputMapping | undefined, scope: ExpressionScope): Promise<unknown> {
  if (mapping === undefined) return {};
  if ('expression' in mapping) return plainJson(await evaluate(mapping.expression, scope));
  const input: Record<string, unknown> = {};
  for (const [name, source] of Object.entries(mapping.fields)) {
    // A field whose expression gives nothing is left out, as JSONata leaves it out of an object.
    const value = await evaluate(source, scope);
    if (value !== undefined) input[name] = plainJson(value);
  }
  return input;
}

/** A JSONata result as plain JSON: no undefined members, no sequence markers. */
function plainJson(value: unknown): unknown {
  return value === undefined ? undefined : (JSON.parse(JSON.stringify(value)) as unknown);
}
