// npm run stack:up | stack:down | stack:status — the local PostgreSQL + Kafka + Connect stack.
// `migrate` and `register` apply migrations / register the outbox connector on a stack
// started otherwise (docker compose), reached on the same configured ports.
import { loadStackConfig, StackConfigError } from '../src/stack/config.js';
import { StackError } from '../src/stack/process.js';
import { migrateStack, stackDown, stackStatus, stackUp } from '../src/stack/stack.js';
import { OUTBOX_CONNECTOR, registerOutboxConnector } from '../src/stack/connect.js';

const log = (line: string) => process.stdout.write(`[stack] ${line}\n`);

async function main(command: string | undefined): Promise<void> {
  const config = loadStackConfig();
  switch (command) {
    case 'up':
      await stackUp(config, log);
      log('ready');
      return;
    case 'down':
      await stackDown(config, log);
      log('down');
      return;
    case 'migrate': {
      const applied = await migrateStack(config);
      log(applied.length > 0 ? `migrations applied: ${applied.join(', ')}` : 'migrations: nothing to apply');
      return;
    }
    case 'register':
      await registerOutboxConnector(config);
      log(`connector ${OUTBOX_CONNECTOR} RUNNING`);
      return;
    case 'status':
      for (const [part, pid] of Object.entries(stackStatus(config))) {
        log(`${part.padEnd(10)} ${pid === undefined ? 'stopped' : `running (pid ${pid})`}`);
      }
      return;
    default:
      throw new StackError(
        'SOUS_STACK_USAGE',
        `unknown command ${JSON.stringify(command ?? '')}: use up, down, status, migrate or register`,
      );
  }
}

main(process.argv[2]).catch((error: unknown) => {
  if (error instanceof StackError || error instanceof StackConfigError) {
    process.stderr.write(`[stack] error: ${error.message}\n`);
  } else {
    process.stderr.write(
      `[stack] unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
  }
  process.exitCode = 1;
});
