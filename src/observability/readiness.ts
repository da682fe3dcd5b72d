import { withTimeout } from './with-timeout.js';

/** One dependency's answer. */
export interface CheckResult {
  readonly ok: boolean;
  /** How long the check took. */
  readonly ms: number;
  /** What it found (e.g. `3 brokers`), or why it failed. */
  readonly detail?: string;
  /** The error code when it failed. */
  readonly code?: string;
}

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, CheckResult>>;
}

/** A check resolves (optionally with a detail) when its dependency is as it must be, and throws otherwise. */
export type Check = () => Promise<string | undefined>;

/**
 * Runs every check at once, each bounded by `timeoutMs`: the process is ready when all
 * pass. A probe therefore answers within about `timeoutMs` whatever is down.
 */
export async function checkReadiness(checks: Readonly<Record<string, Check>>, timeoutMs: number): Promise<Readiness> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]): Promise<[string, CheckResult]> => {
      const started = performance.now();
      try {
        const detail = await withTimeout(check(), timeoutMs, name);
        const ms = Math.round(performance.now() - started);
        return [name, { ok: true, ms, ...(detail === undefined ? {} : { detail }) }];
      } catch (error) {
        const ms = Math.round(performance.now() - started);
        const code = (error as { code?: unknown }).code;
        return [
          name,
          {
            ok: false,
            ms,
            detail: error instanceof Error ? error.message : String(error),
            ...(typeof code === 'string' ? { code } : {}),
          },
        ];
      }
    }),
  );
  return { ready: entries.every(([, r]) => r.ok), checks: Object.fromEntries(entries) };
}
