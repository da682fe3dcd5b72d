// npm run stack:up | stack:down | stack:status — the local PostgreSQL + Kafka + Connect stack.
// `migrate` and `register` apply migrations / register the outbox connector on a stack
// started otherwise (docker compose), reached on the same configured ports.
// `--regions us-east,eu-west` (or SOUS_REGIONS) runs one whole stack per region, side by
// side: the first on the configured ports, the others on ports derived from them
// (src/regions/region-stacks.ts).
import { loadStackConfig, StackConfigError, type StackConfig } from '../src/stack/config.js';
import { StackError } from '../src/stack/process.js';
import { migrateStack, stackDown, stackStatus, stackUp } from '../src/stack/stack.js';
import { OUTBOX_CONNECTOR, registerOutboxConnector } from '../src/stack/connect.js';
import { parseRegionList, regionPortStep, regionStacks } from '../src/regions/region-stacks.js';

const out = (line: string) => process.stdout.write(`[stack] ${line}\n`);

/** The stacks to act on: the one configured, or one per region. */
function stacks(args: readonly string[]): { label: string; config: StackConfig }[] {
  const base = loadStackConfig();
  const flag = args.findIndex((a) => a === '--regions' || a.startsWith('--regions='));
  let list: string | undefined = process.env.SOUS_REGIONS;
  let source = 'SOUS_REGIONS';
  if (flag >= 0) {
    const arg = args[flag] ?? '';
    list = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : args[flag + 1];
    source = '--regions';
    if (list === undefined)
      throw new StackConfigError('invalid stack setting: --regions needs a list, e.g. us-east,eu-west');
  }
  if (list === undefined || list === '') return [{ label: '', config: base }];
  return regionStacks(base, parseRegionList(list, source), regionPortStep(process.env)).map((r) => ({
    label: `[${r.region}] `,
    config: r.config,
  }));
}

async function main(command: string | undefined, args: readonly string[]): Promise<void> {
  const targets = stacks(args);
  for (const { label, config } of command === 'down' ? [...targets].reverse() : targets) {
    const log = (line: string) => out(`${label}${line}`);
    switch (command) {
      case 'up':
        await stackUp(config, log);
        log('ready');
        break;
      case 'down':
        await stackDown(config, log);
        log('down');
        break;
      case 'migrate': {
        const applied = await migrateStack(config);
        log(applied.length > 0 ? `migrations applied: ${applied.join(', ')}` : 'migrations: nothing to apply');
        break;
      }
      case 'register':
        await registerOutboxConnector(config);
        log(`connector ${OUTBOX_CONNECTOR} RUNNING`);
        break;
      case 'status':
        for (const [part, pid] of Object.entries(stackStatus(config))) {
          log(`${part.padEnd(10)} ${pid === undefined ? 'stopped' : `running (pid ${pid})`}`);
        }
        break;
      default:
        throw new StackError(
          'SOUS_STACK_USAGE',
          `unknown command ${JSON.stringify(command ?? '')}: use up, down, status, migrate or register`,
        );
    }
  }
}

main(process.argv[2], process.argv.slice(3)).catch((error: unknown) => {
  if (error instanceof StackError || error instanceof StackConfigError) {
    process.stderr.write(`[stack] error: ${error.message}\n`);
  } else {
    process.stderr.write(
      `[stack] unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
  }
  process.exitCode = 1;
});
