import { CliError, EXIT, exitCodeOf } from './exit-codes.js';
import type { ApiSettings } from './settings.js';

/** How long one API request may take before the CLI calls the API unreachable. */
const REQUEST_TIMEOUT_MS = 30_000;

interface GraphQLErrorBody {
  readonly message?: unknown;
  readonly extensions?: { readonly code?: unknown; readonly issues?: unknown };
}

/** The network error's own code (ECONNREFUSED, ENOTFOUND...), when fetch kept one. */
function networkCode(error: unknown): string {
  let cause: unknown = error;
  while (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
    // Connecting to a name with several addresses fails as an AggregateError of each.
    cause = cause instanceof AggregateError && cause.errors.length > 0 ? cause.errors[0] : cause.cause;
  }
  return error instanceof Error ? error.message : String(error);
}

/** A GraphQL client of the sous API, turning each failure into a CliError with what to do. */
export class ApiClient {
  readonly #settings: ApiSettings;
  constructor(settings: ApiSettings) {
    this.#settings = settings;
  }

  get url(): string {
    return this.#settings.url;
  }

  #noToken(): CliError {
    return new CliError(
      EXIT.unreachable,
      'SOUS_CLI_NO_TOKEN',
      `no API token: set SOUS_TOKEN, pass --token, or put "token" in ${this.#settings.configPath} ` +
        `(an admin creates one with "sous token create <name> --role operator"; the first with --local)`,
    );
  }

  async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const token = this.#settings.token;
    if (token === undefined) throw this.#noToken();
    let response: Response;
    try {
      response = await fetch(this.#settings.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      throw new CliError(
        EXIT.unreachable,
        'SOUS_CLI_UNREACHABLE',
        `cannot reach the sous API at ${this.#settings.url} (${networkCode(error)}): start it (npm run api) ` +
          `or point SOUS_API_URL / --api-url at it`,
        { cause: error },
      );
    }
    let body: { data?: T | null; errors?: GraphQLErrorBody[] };
    try {
      body = (await response.json()) as typeof body;
    } catch (error) {
      throw new CliError(
        EXIT.unreachable,
        'SOUS_CLI_NOT_AN_API',
        `${this.#settings.url} answered HTTP ${response.status} without GraphQL JSON: is SOUS_API_URL the sous API's /graphql endpoint?`,
        { cause: error },
      );
    }
    const first = body.errors?.[0];
    if (first !== undefined) {
      const code = typeof first.extensions?.code === 'string' ? first.extensions.code : 'SOUS_CLI_API_ERROR';
      const message = typeof first.message === 'string' ? first.message : 'the API returned an error';
      const issues = Array.isArray(first.extensions?.issues)
        ? (first.extensions.issues as unknown[]).map((i) => `\n  ${typeof i === 'string' ? i : JSON.stringify(i)}`)
        : [];
      throw new CliError(exitCodeOf(code), code, `${message}${issues.join('')}${this.#hint(code)}`);
    }
    if (!response.ok || body.data === undefined || body.data === null) {
      throw new CliError(
        EXIT.unreachable,
        'SOUS_CLI_NOT_AN_API',
        `${this.#settings.url} answered HTTP ${response.status} without data: is it the sous API?`,
      );
    }
    return body.data;
  }

  /** What to do about an error code, as a sentence after the API's message. */
  #hint(code: string): string {
    switch (code) {
      case 'SOUS_UNAUTHENTICATED':
        return ` (set SOUS_TOKEN, --token or "token" in ${this.#settings.configPath} to a valid token)`;
      case 'SOUS_FORBIDDEN':
        return ' (use a token with that role: an admin creates one with "sous token create <name> --role <role>")';
      default:
        return '';
    }
  }
}
