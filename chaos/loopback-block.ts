// The chaos run's network fault: the broker made unreachable on loopback for a while by an
// iptables rule that drops every TCP packet sent to its port (new connections hang in SYN,
// requests on open ones go unanswered), then the rule is deleted. Needs root and iptables
// (`apt-get install iptables`). Each rule carries a comment naming the run, so a run killed
// before it could undo its rule has it deleted by the next run on that port
// (`removeLeftoverBlocks`), and every rule still in place is deleted when the process exits.
import { execFileSync } from 'node:child_process';

const TAG_PREFIX = 'sous-chaos-';

function iptables(args: readonly string[]): string {
  return execFileSync('iptables', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Why the network fault cannot be injected here, or undefined when it can. */
export function loopbackBlockUnavailable(): string | undefined {
  try {
    iptables(['-S', 'INPUT']);
    return undefined;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return `the network fault needs iptables run as root (apt-get install iptables): ${reason}`;
  }
}

/**
 * Deletes rules an earlier run on the same port left (it was killed between block and
 * unblock). A rule on another port belongs to a chaos run on another stack, maybe running.
 */
export function removeLeftoverBlocks(port: number): number {
  let removed = 0;
  for (const line of iptables(['-S', 'INPUT']).split('\n')) {
    if (!line.startsWith('-A INPUT ') || !line.includes(TAG_PREFIX) || !line.includes(`--dport ${port} `)) continue;
    // `-S` prints the rule as it was added; the same arguments after -D delete it.
    const spec = line.slice('-A INPUT '.length).match(/"[^"]*"|\S+/g) ?? [];
    iptables(['-D', 'INPUT', ...spec.map((part) => part.replace(/^"|"$/g, ''))]);
    removed++;
  }
  return removed;
}

/** Drops loopback TCP traffic to one port while blocked. */
export class LoopbackBlock {
  readonly #rule: readonly string[];
  #blocked = false;
  readonly #undoOnExit = () => {
    if (this.#blocked) this.unblock();
  };

  constructor(
    readonly port: number,
    run: string,
  ) {
    this.#rule = [
      'INPUT',
      '-i',
      'lo',
      '-p',
      'tcp',
      '--dport',
      String(port),
      '-m',
      'comment',
      '--comment',
      `${TAG_PREFIX}${run}`,
      '-j',
      'DROP',
    ];
  }

  block(): void {
    if (this.#blocked) return;
    iptables(['-I', ...this.#rule]);
    this.#blocked = true;
    process.once('exit', this.#undoOnExit);
  }

  unblock(): void {
    if (!this.#blocked) return;
    iptables(['-D', ...this.#rule]);
    this.#blocked = false;
    process.off('exit', this.#undoOnExit);
  }
}
