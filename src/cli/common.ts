import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { ApiClient } from './client.js';
import { CliError, EXIT } from './exit-codes.js';
import { resolveApiSettings } from './settings.js';

/** Options every command accepts (declared on the program). */
export interface GlobalOptions {
  readonly apiUrl?: string;
  readonly token?: string;
}

/** The API client of a command, from its flags, the environment or the config file. */
export function clientOf(command: Command): ApiClient {
  const { apiUrl, token } = command.optsWithGlobals<GlobalOptions>();
  return new ApiClient(
    resolveApiSettings({ ...(apiUrl === undefined ? {} : { apiUrl }), ...(token === undefined ? {} : { token }) }),
  );
}

/** A commander parser of a whole number in [min, max]; anything else is a usage error. */
export const integer =
  (min: number, max: number = Number.MAX_SAFE_INTEGER) =>
  (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}, got "${value}"`);
    }
    return n;
  };

/** A commander parser of a JSON value. */
export function jsonValue(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch (error) {
    throw new InvalidArgumentError(
      `not JSON (${error instanceof Error ? error.message : String(error)}): quote it, e.g. '{"orderId": 1}'`,
    );
  }
}

/** The text of a file, or of stdin for `-`; an unreadable file is a usage error. */
export function readText(path: string): string {
  try {
    return readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (error) {
    throw new CliError(
      EXIT.usage,
      'SOUS_CLI_FILE_UNREADABLE',
      `cannot read ${path === '-' ? 'stdin' : path}: ${(error as { code?: string }).code ?? String(error)}`,
      { cause: error },
    );
  }
}

/** A JSON file's value; a file that is not JSON is a usage error. */
export function readJsonFile(path: string): unknown {
  const text = readText(path);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new CliError(EXIT.usage, 'SOUS_CLI_USAGE', `${path} is not JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** A usage error found after parsing (two exclusive options, nothing selected...). */
export function usage(message: string): CliError {
  return new CliError(EXIT.usage, 'SOUS_CLI_USAGE', message);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** How often long operations poll for progress. */
export const POLL_MS = 500;
