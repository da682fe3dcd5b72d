import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { CliError, EXIT } from './exit-codes.js';

/** Where the API is served by `npm run api` / `npm start` unless told otherwise. */
export const DEFAULT_API_URL = 'http://127.0.0.1:4000/graphql';

/** How the CLI reaches the API: from flags, else the environment, else the config file. */
export interface ApiSettings {
  readonly url: string;
  readonly token: string | undefined;
  /** The config file consulted (whether or not it exists), for error messages. */
  readonly configPath: string;
}

/**
 * The config file: `$SOUS_CONFIG`, else `$XDG_CONFIG_HOME/sous/config.json`, else
 * `~/.config/sous/config.json`.
 */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SOUS_CONFIG !== undefined && env.SOUS_CONFIG !== '') return env.SOUS_CONFIG;
  const base =
    env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'sous', 'config.json');
}

const fileSchema = z.strictObject({
  apiUrl: z.string().min(1, 'apiUrl must be the URL of the GraphQL API').optional(),
  token: z.string().min(1, 'token must be an API token').optional(),
});

function readConfigFile(path: string): z.infer<typeof fileSchema> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOENT') return {};
    throw new CliError(EXIT.usage, 'SOUS_CLI_CONFIG_INVALID', `cannot read the config file ${path}`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new CliError(
      EXIT.usage,
      'SOUS_CLI_CONFIG_INVALID',
      `the config file ${path} is not JSON: write {"apiUrl": "...", "token": "..."}`,
      { cause: error },
    );
  }
  const parsed = fileSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`);
    throw new CliError(EXIT.usage, 'SOUS_CLI_CONFIG_INVALID', `the config file ${path}: ${problems.join('; ')}`);
  }
  return parsed.data;
}

/** A base URL (`http://host:4000`) means its /graphql endpoint. */
function graphqlUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new CliError(
      EXIT.usage,
      'SOUS_CLI_USAGE',
      `"${url}" is not a URL: give the API as http://host:port/graphql`,
      {
        cause: error,
      },
    );
  }
  if (parsed.pathname === '/' || parsed.pathname === '') parsed.pathname = '/graphql';
  return parsed.toString();
}

const nonEmpty = (value: string | undefined): string | undefined =>
  value === undefined || value === '' ? undefined : value;

export function resolveApiSettings(
  flags: { apiUrl?: string; token?: string },
  env: NodeJS.ProcessEnv = process.env,
): ApiSettings {
  const path = configPath(env);
  const file = readConfigFile(path);
  const url = nonEmpty(flags.apiUrl) ?? nonEmpty(env.SOUS_API_URL) ?? file.apiUrl ?? DEFAULT_API_URL;
  return {
    url: graphqlUrl(url),
    token: nonEmpty(flags.token) ?? nonEmpty(env.SOUS_TOKEN) ?? file.token,
    configPath: path,
  };
}
