// npm run token -- --name <name> --role <viewer|operator|admin> [--revoke]
// Creates (or revokes) an API token directly in PostgreSQL: how the first admin token
// comes to exist. Prints the secret once; only its hash is stored.
import { parseArgs } from 'node:util';
import { createApiToken, createDatabase, migrate, revokeApiToken, ROLES, type Role } from 'sous';
import { databaseUrl, loadStackConfig } from '../src/stack/config.js';

const { values } = parseArgs({
  options: { name: { type: 'string' }, role: { type: 'string', default: 'viewer' }, revoke: { type: 'boolean' } },
});
const fail = (message: string): never => {
  process.stderr.write(`sous token: ${message}\n`);
  process.exit(2);
};
const name = values.name ?? fail('--name is required');
const role = (ROLES as readonly string[]).includes(values.role)
  ? (values.role as Role)
  : fail(`--role must be one of ${ROLES.join(', ')}`);
const db = createDatabase({
  connectionString: process.env.SOUS_DATABASE_URL ?? databaseUrl(loadStackConfig()),
  applicationName: 'sous-token',
});
try {
  await migrate(db);
  if (values.revoke === true) {
    process.stdout.write((await revokeApiToken(db, name)) ? `revoked ${name}\n` : `no active token named ${name}\n`);
  } else {
    const created = await createApiToken(db, name, role, 'npm run token');
    process.stdout.write(`${created.token}\n`);
  }
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
} finally {
  await db.destroy();
}
