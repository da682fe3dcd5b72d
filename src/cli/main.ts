#!/usr/bin/env node
// The sous CLI: `sous --help` lists every command. It talks to the GraphQL API (SOUS_API_URL,
// SOUS_TOKEN, or the config file) except `stack`, `migrate` and `token --local`, which act on
// the local stack directly. Exit codes: see exit-codes.ts (0 ok, 1 refused, 2 usage, 3 unreachable).
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { registerActionCommands } from './actions.js';
import { registerDeadLetterCommands } from './dead-letters.js';
import { CliError, EXIT, type ExitCode } from './exit-codes.js';
import { registerExecutionCommands } from './executions.js';
import { processIo, type Io } from './output.js';
import { registerRecipeCommands } from './recipes.js';
import { registerScheduleCommands } from './schedules.js';
import { DEFAULT_API_URL } from './settings.js';
import { registerStackCommands } from './stack.js';
import { registerShardCommands } from './shards.js';
import { registerTokenCommands } from './tokens.js';

export function buildProgram(io: Io): Command {
  const program = new Command('sous');
  // Set before any subcommand is added: subcommands inherit them.
  program
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.out.write(text),
      writeErr: (text) => io.err.write(text),
    })
    .showHelpAfterError('(add --help for usage)')
    .showSuggestionAfterError(true)
    .description('Drive sous: recipes, executions, dead letters, schedules, tokens, and the local stack.')
    .option('--api-url <url>', `GraphQL API (default: SOUS_API_URL, the config file, else ${DEFAULT_API_URL})`)
    .option('--token <token>', 'API token (default: SOUS_TOKEN, else "token" in the config file)')
    .addHelpText(
      'after',
      `
Config file: $SOUS_CONFIG, else $XDG_CONFIG_HOME/sous/config.json (~/.config/sous/config.json),
holding {"apiUrl": "http://127.0.0.1:4000/graphql", "token": "sous_..."}.
Exit codes: 0 ok, 1 refused or failed, 2 usage error, 3 API/database unreachable or token refused.`,
    );
  registerStackCommands(program, io);
  registerRecipeCommands(program, io);
  registerExecutionCommands(program, io);
  registerActionCommands(program, io);
  registerDeadLetterCommands(program, io);
  registerScheduleCommands(program, io);
  registerTokenCommands(program, io);
  registerShardCommands(program, io);
  return program;
}

/** Runs the CLI on `argv` (without node and the script); returns the exit code. */
export async function runCli(argv: readonly string[], io: Io = processIo): Promise<ExitCode> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and --version end with 0; every other commander error is a usage error,
      // already printed by commander with the help hint.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof CliError) {
      io.err.write(`sous: ${error.message} [${error.code}]\n`);
      return error.exitCode;
    }
    io.err.write(
      `sous: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return EXIT.refused;
  }
}

/** True when this file is the program node runs (also through the npm bin symlink). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  const code = await runCli(process.argv.slice(2));
  // Exit now: idle keep-alive sockets of fetch must not hold the process for seconds.
  process.exit(code);
}
