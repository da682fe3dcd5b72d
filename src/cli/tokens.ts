// sous token create | revoke
import type { Command } from 'commander';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { redactConnectionString } from '../security/redact.js';
import { clientOf } from './common.js';
import { CliError, EXIT } from './exit-codes.js';
import { printJson, printLine, type Io } from './output.js';

interface TokenOptions {
  role?: string;
  local?: boolean;
  json?: boolean;
}

/**
 * Runs `work` against the local stack's PostgreSQL (SOUS_DATABASE_URL, else the stack's
 * configured port): how the first admin token comes to exist, before any token can call
 * the API.
 */
async function onLocalDatabase<T>(
  work: (db: Kysely<Database>, auth: typeof import('../api/auth.js')) => Promise<T>,
): Promise<T> {
  // Loaded only here: commands that call the API start without the database layers.
  const [auth, { createDatabase }, { migrate }, { databaseUrl, loadStackConfig }, security, connectionErrors] =
    await Promise.all([
      import('../api/auth.js'),
      import('../db/database.js'),
      import('../db/migrate.js'),
      import('../stack/config.js'),
      import('../security/config.js'),
      import('../db/connection-errors.js'),
    ]);
  const url = process.env.SOUS_DATABASE_URL ?? databaseUrl(loadStackConfig());
  // SOUS_PG_SSL_*, SOUS_DATABASE_PASSWORD_FILE as every sous process reads them; a bad one stops here.
  let settings: import('../security/config.js').SecurityConfig;
  try {
    settings = security.loadSecurityConfig();
  } catch (error) {
    throw new CliError(EXIT.usage, 'SOUS_CONFIG_INVALID', (error as Error).message, { cause: error });
  }
  const db = createDatabase({
    connectionString: url,
    ...(settings.postgres === undefined ? {} : { tls: settings.postgres }),
    ...(settings.postgresPassword === undefined ? {} : { password: settings.postgresPassword }),
    poolSize: 1,
    applicationName: 'sous-cli',
  });
  try {
    await migrate(db);
    return await work(db, auth);
  } catch (error) {
    if (error instanceof CliError || (error as { code?: unknown }).code === 'SOUS_TOKEN_EXISTS') throw error;
    const refused = connectionErrors.postgresConnectionFailure(error);
    if (refused !== undefined) {
      throw new CliError(
        EXIT.unreachable,
        refused.code,
        `${refused.message} (PostgreSQL at ${redactConnectionString(url)})`,
        {
          cause: error,
        },
      );
    }
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|28P01|28000|3D000)$/.test(code)) {
      throw new CliError(
        EXIT.unreachable,
        'SOUS_CLI_DATABASE_UNREACHABLE',
        `cannot reach PostgreSQL at ${redactConnectionString(url)} (${code}): start the stack (sous stack up) or set SOUS_DATABASE_URL`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    await db.destroy();
  }
}

/** The roles of sous.api_token (src/api/auth.ts ROLES), kept here so the CLI starts light. */
const ROLES = ['viewer', 'operator', 'admin'] as const;
type Role = (typeof ROLES)[number];

function role(value: string | undefined): Role {
  const lower = (value ?? '').toLowerCase();
  if (!(ROLES as readonly string[]).includes(lower)) {
    throw new CliError(EXIT.usage, 'SOUS_CLI_USAGE', `--role must be one of ${ROLES.join(', ')}`);
  }
  return lower as Role;
}

export function registerTokenCommands(program: Command, io: Io): void {
  const token = program.command('token').description('create and revoke API tokens (admin)');

  token
    .command('create')
    .description('create an API token; prints its secret, which is shown only once')
    .argument('<name>', 'token name (letters, digits, ".", "_", "-")')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option(
      '--local',
      "write it straight into the local stack's PostgreSQL (no API, no token needed: the first admin token)",
    )
    .option('--json', 'print {name, role, token} as JSON')
    .action(async (name: string, options: TokenOptions, command: Command) => {
      const wanted = role(options.role);
      let created: { name: string; role: string; token: string };
      if (options.local === true) {
        if (!/^[A-Za-z0-9._-]{1,100}$/.test(name)) {
          throw new CliError(EXIT.usage, 'SOUS_CLI_USAGE', 'name: 1 to 100 letters, digits, ".", "_" or "-"');
        }
        try {
          created = await onLocalDatabase((db, auth) =>
            auth.createApiToken(db, name, wanted, 'sous token create --local'),
          );
        } catch (error) {
          if ((error as { code?: unknown }).code !== 'SOUS_TOKEN_EXISTS') throw error;
          throw new CliError(
            EXIT.refused,
            'SOUS_TOKEN_EXISTS',
            `${(error as Error).message}: choose another name or revoke it first`,
          );
        }
      } else {
        const data = await clientOf(command).request<{ createApiToken: { name: string; role: string; token: string } }>(
          `mutation($name: String!, $role: Role!) { createApiToken(name: $name, role: $role) { name role token } }`,
          { name, role: wanted.toUpperCase() },
        );
        created = data.createApiToken;
      }
      if (options.json === true) printJson(io, { ...created, role: created.role.toLowerCase() });
      // The secret alone on stdout, so `export SOUS_TOKEN=$(sous token create ...)` works.
      else printLine(io, created.token);
    });

  token
    .command('revoke')
    .description('revoke an API token: it stops working at once')
    .argument('<name>', 'token name')
    .option('--local', "revoke it straight in the local stack's PostgreSQL")
    .option('--json', 'print {name, revoked} as JSON')
    .action(async (name: string, options: TokenOptions, command: Command) => {
      const revoked =
        options.local === true
          ? await onLocalDatabase((db, auth) => auth.revokeApiToken(db, name))
          : (
              await clientOf(command).request<{ revokeApiToken: boolean }>(
                `mutation($name: String!) { revokeApiToken(name: $name) }`,
                { name },
              )
            ).revokeApiToken;
      if (options.json === true) printJson(io, { name, revoked });
      else if (revoked) printLine(io, `revoked ${name}`);
      if (!revoked) {
        throw new CliError(EXIT.refused, 'SOUS_TOKEN_NOT_FOUND', `no active token named "${name}"`);
      }
    });
}
