import { GraphQLError, type ValidationRule } from 'graphql';
import { createComplexityRule, simpleEstimator, type ComplexityEstimator } from 'graphql-query-complexity';
import { QueryTooComplexError } from './errors.js';

/** A list field costs its children times how many it may return (`first`, or a default). */
const listEstimator =
  (defaultListSize: number): ComplexityEstimator =>
  ({ args, childComplexity, field }) => {
    // A connection's size is counted on the connection (`first`), not again on its edges.
    if (field.name === 'edges') return 1 + childComplexity;
    const named = String(field.type);
    const isList = named.startsWith('[') || named.endsWith('Connection') || named.endsWith('Connection!');
    if (!isList) return undefined;
    const first = typeof args.first === 'number' ? args.first : defaultListSize;
    return 1 + Math.max(1, childComplexity) * first;
  };

/**
 * Refuses, before it runs, a query whose estimated cost passes `maximum`: every field
 * costs 1, a list multiplies its fields by its size.
 */
export function costLimitRule(
  maximum: number,
  variables: Record<string, unknown>,
  defaultListSize = 20,
): ValidationRule {
  return createComplexityRule({
    maximumComplexity: maximum,
    variables,
    estimators: [listEstimator(defaultListSize), simpleEstimator({ defaultComplexity: 1 })],
    createError: (max, actual) => {
      const error = new QueryTooComplexError(
        `the query costs ${actual}, more than the ${max} allowed: ask for fewer items or fields`,
      );
      return new GraphQLError(error.message, {
        originalError: error,
        extensions: { code: error.code, retryable: error.retryable, cost: actual, maximumCost: max },
      });
    },
  });
}
