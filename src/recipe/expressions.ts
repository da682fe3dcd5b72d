import jsonata from 'jsonata';
import { SousError } from '../errors.js';
import type { Expression, ExpressionScope, InputMapping } from './plan.js';

/** Evaluating an expression failed (syntax, a runtime error, or the time limit). */
export class ExpressionError extends SousError {
  readonly code = 'SOUS_EXPRESSION_FAILED';
  readonly retryable = false;
}

type Compiled = ReturnType<typeof jsonata>;
const compiled = new Map<string, Compiled>();

/** Parses JSONata once per source text. */
export function compileExpression(source: Expression): Compiled {
  let expression = compiled.get(source);
  if (expression === undefined) {
    try {
      expression = jsonata(source);
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
  try {
    const value: unknown = await expression.evaluate(scope);
    // Plain JSON out: JSONata builds null-prototype objects and flags its arrays.
    return value === undefined ? undefined : (JSON.parse(JSON.stringify(value)) as unknown);
  } catch (error) {
    throw new ExpressionError(`expression ${JSON.stringify(source)} failed: ${messageOf(error)}`, { cause: error });
  }
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
