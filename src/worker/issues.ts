import type { z } from 'zod';

/** A zod error as one line: `root.path: message; ...`, naming every problem. */
export function describeIssues(error: z.ZodError, root: string): string {
  return error.issues.map((i) => `${[root, ...i.path.map((p) => String(p))].join('.')}: ${i.message}`).join('; ');
}
