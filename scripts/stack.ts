// npm run stack:up | stack:down | stack:status — the local PostgreSQL + Kafka + Connect stack.
import { loadStackConfig, StackConfigError } from './stack/config.js';
import { StackError } from './stack/process.js';
import { stackDown, stackStatus, stackUp } from './stack/stack.js';

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
    case 'status':
      for (const [part, pid] of Object.entries(stackStatus(config))) {
        log(`${part.padEnd(10)} ${pid === undefined ? 'stopped' : `running (pid ${pid})`}`);
      }
      return;
    default:
      throw new StackError('SOUS_STACK_USAGE', `unknown command ${JSON.stringify(command ?? '')}: use up, down or status`);
  }
}

main(process.argv[2]).catch((error: unknown) => {
  if (error instanceof StackError || error instanceof StackConfigError) {
    process.stderr.write(`[stack] error: ${error.message}\n`);
  } else {
    process.stderr.write(`[stack] unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  }
  process.exitCode = 1;
});
