import { GraphQLError, Kind, type ValidationRule, type ValueNode } from 'graphql';
import { nulPath } from '../nul-path.js';
import { InvalidArgumentError } from './errors.js';

/** Where in a literal (or in the variables it names) a NUL character sits, or undefined. */
function nulIn(
  value: ValueNode,
  variables: Record<string, unknown>,
  path: readonly (string | number)[],
): (string | number)[] | undefined {
  switch (value.kind) {
    case Kind.STRING:
      return value.value.includes('\u0000') ? [...path] : undefined;
    case Kind.VARIABLE: {
      const found = nulPath(variables[value.name.value]);
      return found === undefined ? undefined : [...path, ...found];
    }
    case Kind.LIST:
      for (const [i, item] of value.values.entries()) {
        const found = nulIn(item, variables, [...path, i]);
        if (found !== undefined) return found;
      }
      return undefined;
    case Kind.OBJECT:
      for (const field of value.fields) {
        const key = field.name.value;
        const found = nulIn(field.value, variables, [...path, key]);
        if (found !== undefined) return found;
      }
      return undefined;
    default:
      return undefined;
  }
}

const NUL = 'holds a NUL character (\\u0000), which sous cannot store or search for: remove it';

/**
 * Refuses, before anything runs, a request whose arguments hold a NUL character, in a
 * literal or in a variable (JSON arguments included, keys too): PostgreSQL's text and
 * jsonb cannot hold one, so every such argument would otherwise fail deep in a resolver
 * as an internal error. One check here covers every argument of every field, present
 * and future.
 */
export function nulArgumentRule(variables: Record<string, unknown>): ValidationRule {
  return (context) => ({
    Argument(node) {
      const found = nulIn(node.value, variables, [node.name.value]);
      if (found === undefined) return;
      const field = context.getFieldDef()?.name ?? context.getDirective()?.name ?? '(unknown)';
      const argument = found.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
      const error = new InvalidArgumentError(`argument ${argument} of ${field} ${NUL}`);
      context.reportError(
        new GraphQLError(error.message, {
          nodes: node,
          originalError: error,
          extensions: { code: error.code, retryable: error.retryable, field, argument },
        }),
      );
    },
    VariableDefinition(node) {
      // A default value is a literal the request carries too.
      if (node.defaultValue === undefined) return;
      const found = nulIn(node.defaultValue, {}, []);
      if (found === undefined) return;
      const name = `$${node.variable.name.value}`;
      const error = new InvalidArgumentError(`the default value of ${name} ${NUL}`);
      context.reportError(
        new GraphQLError(error.message, {
          nodes: node,
          originalError: error,
          extensions: { code: error.code, retryable: error.retryable, argument: name },
        }),
      );
    },
  });
}
