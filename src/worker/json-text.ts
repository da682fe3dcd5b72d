/**
 * JSON.stringify with its real result type: undefined for undefined, functions and
 * symbols (TypeScript's lib says it always returns a string). Throws on BigInt and cycles.
 */
export function jsonText(value: unknown): string | undefined {
  return JSON.stringify(value);
}
