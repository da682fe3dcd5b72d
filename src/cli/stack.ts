// sous stack up | down | status, and sous migrate: the local stack, driven directly (no API).
import type { Command } from 'commander';
import { loadStackConfig, StackConfigError, type StackConfig } from '../stack/config.js';
import { StackError } from '../stack/process.js';
import { CliError, EXIT } from './exit-codes.js';
import { printJson, printLine, type Io } from './output.js';

/** The stack's settings; an invalid one (a bad SOUS_*_PORT) is a usage error. */
function config(): StackConfig {
  try {
    return loadStackConfig();
  } catch (error) {
    if (error instanceof StackConfigError) throw new CliError(EXIT.usage, error.code, error.message, { cause: error });
    throw error;
  }
}

/** A stack failure says what to fix in one line (its message), exit 1. */
async function stackWork<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof StackError) throw new CliError(EXIT.refused, error.code, error.message, { cause: error });
    throw error;
  }
}

// Loaded when a stack command runs: the API commands start without it (and graphile-worker).
const stackModule = () => import('../stack/stack.js');

export function registerStackCommands(program: Command, io: Io): void {
  const log = (line: string) => io.err.write(`[stack] ${line}\n`);
  const stack = program
    .command('stack')
    .description('the local PostgreSQL + Kafka + Kafka Connect stack (ports from SOUS_PG_PORT, SOUS_KAFKA_PORT, ...)');

  stack
    .command('up')
    .description('start every part not running yet and wait until each is healthy (idempotent)')
    .action(async () => {
      const c = config();
      const { stackUp } = await stackModule();
      await stackWork(() => stackUp(c, log));
      printLine(io, 'stack ready');
    });

  stack
    .command('down')
    .description('stop every part (safe when already stopped)')
    .action(async () => {
      const c = config();
      const { stackDown } = await stackModule();
      await stackWork(() => stackDown(c, log));
      printLine(io, 'stack down');
    });

  stack
    .command('status')
    .description('which parts run, with their process ids (exit 1 when one is stopped)')
    .option('--json', 'print {part: pid | null} as JSON')
    .action(async (options: { json?: boolean }) => {
      const { stackStatus } = await stackModule();
      const status = stackStatus(config());
      if (options.json === true) {
        printJson(io, Object.fromEntries(Object.entries(status).map(([k, v]) => [k, v ?? null])));
      } else {
        for (const [part, pid] of Object.entries(status)) {
          printLine(io, `${part.padEnd(10)} ${pid === undefined ? 'stopped' : `running (pid ${pid})`}`);
        }
      }
      const stopped = Object.entries(status).filter(([, pid]) => pid === undefined);
      if (stopped.length > 0) {
        throw new CliError(
          EXIT.refused,
          'SOUS_STACK_DOWN',
          `${stopped.map(([part]) => part).join(', ')} not running: start the stack with "sous stack up"`,
        );
      }
    });

  program
    .command('migrate')
    .description("apply sous's (and graphile-worker's) migrations to the local stack's database")
    .option('--json', 'print the applied migrations as JSON')
    .action(async (options: { json?: boolean }) => {
      const c = config();
      const { migrateStack } = await stackModule();
      let applied: string[];
      try {
        applied = await stackWork(() => migrateStack(c));
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (code === 'ECONNREFUSED') {
          throw new CliError(
            EXIT.unreachable,
            'SOUS_CLI_DATABASE_UNREACHABLE',
            `cannot reach PostgreSQL on port ${c.pgPort}: start the stack with "sous stack up" (or set SOUS_PG_PORT)`,
            { cause: error },
          );
        }
        throw error;
      }
      if (options.json === true) printJson(io, { applied });
      else
        printLine(
          io,
          applied.length > 0 ? `migrations applied: ${applied.join(', ')}` : 'migrations: nothing to apply',
        );
    });
}
