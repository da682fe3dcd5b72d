import { isMap, LineCounter, parseDocument, type Document } from 'yaml';
import { formatPath, RecipeInvalidError, type RecipeIssue } from './errors.js';
import type { RecipePlan } from './plan.js';
import { compileRecipe } from './schema.js';

/** `steps[2].retry` → ['steps', 2, 'retry'], to find the node a path names. */
function pathKeys(path: string): (string | number)[] {
  return [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] === undefined ? (m[1] ?? '') : Number(m[2])));
}

function lineOf(doc: Document, lines: LineCounter, path: string): number | undefined {
  // The deepest node the path reaches (a missing key points at its parent).
  const keys = pathKeys(path);
  for (let n = keys.length; n >= 0; n--) {
    const node = doc.getIn(keys.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node?.range !== undefined) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}

/**
 * Parses and compiles a YAML recipe. Syntax errors, duplicate keys and schema problems
 * all become RecipeInvalidError issues, with the line where it can be found.
 */
export function parseRecipeYaml(text: string): RecipePlan {
  // Callers from plain JavaScript (or a serializer that returns undefined) can pass a non-string;
  // the YAML parser would throw a TypeError for it, which names nothing.
  if (typeof text !== 'string')
    throw new RecipeInvalidError([{ path: '', message: `a recipe file must be text, got ${typeof text}` }]);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    const issues: RecipeIssue[] = doc.errors.map((e) => {
      const pos = e.linePos?.[0];
      return {
        path: '',
        message: `YAML ${pos === undefined ? '' : `line ${pos.line}:${pos.col} `}${(e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`,
      };
    });
    throw new RecipeInvalidError(issues);
  }
  if (!isMap(doc.contents))
    throw new RecipeInvalidError([{ path: '', message: 'a recipe file must be a YAML mapping (name, steps, ...)' }]);
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 50 });
  } catch (error) {
    throw new RecipeInvalidError(
      [{ path: '', message: `YAML ${error instanceof Error ? error.message : String(error)}` }],
      { cause: error },
    );
  }
  // An alias inside the node it names (`a: &x [*x]`) makes a cyclic value, which no
  // recipe is and which validation would follow until the stack overflows.
  const cycle = cyclePath(value, []);
  if (cycle !== undefined) {
    throw new RecipeInvalidError([
      { path: formatPath(cycle), message: 'a YAML alias refers to a node that contains it (a cycle)' },
    ]);
  }
  try {
    return compileRecipe(value);
  } catch (error) {
    if (!(error instanceof RecipeInvalidError)) throw error;
    throw new RecipeInvalidError(
      error.issues.map((i) => {
        const line = lineOf(doc, lines, i.path);
        return line === undefined ? i : { path: i.path, message: `${i.message} (line ${line})` };
      }),
      { cause: error },
    );
  }
}

/** The path of the first place where `value` contains one of its own ancestors, if any. */
function cyclePath(
  value: unknown,
  path: (string | number)[],
  ancestors = new Set<object>(),
): (string | number)[] | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if (ancestors.has(value)) return path;
  ancestors.add(value);
  const entries: [string | number, unknown][] = Array.isArray(value)
    ? value.map((v, i): [number, unknown] => [i, v])
    : Object.entries(value);
  for (const [key, child] of entries) {
    const found = cyclePath(child, [...path, key], ancestors);
    if (found !== undefined) return found;
  }
  ancestors.delete(value);
  return undefined;
}
