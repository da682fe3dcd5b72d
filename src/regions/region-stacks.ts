import { regionSchema } from '../protocol/shards.js';
import { StackConfigError, type StackConfig } from '../stack/config.js';

/**
 * Several regions on one machine: each region is a whole stack of its own (PostgreSQL,
 * Kafka broker, Kafka Connect), as it would be in its own data centre. The first region
 * listed uses the configured ports and folder (SOUS_PG_PORT, ...): a one-region stack is
 * the stack as before. Region `i` (0-based) adds `i * portStep` to every port and keeps
 * its data in `<stackDir>-r<i>` (by position, like its ports: a folder always matches its ports).
 *
 * Why a step of 1000 by default: the profiles' base ports (15xxx dev, 25xxx CI and tests)
 * are 10000 apart and the four ports of one stack span 3661 (5432 to 9093), so a
 * second region at +1000 (26432/30092/30093/29083 in CI) meets no other stack's port,
 * nor any port of its own stack. derivedRegionPorts refuses a set that collides.
 */
export const DEFAULT_REGION_PORT_STEP = 1000;

export interface RegionStack {
  readonly region: string;
  readonly index: number;
  readonly config: StackConfig;
}

/** Region names from `--regions a,b` or SOUS_REGIONS: at least one, each once, each a valid region name. */
export function parseRegionList(text: string, source = 'SOUS_REGIONS'): string[] {
  const regions = text
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r !== '');
  if (regions.length === 0) throw new StackConfigError(`invalid stack setting: ${source} names no region`);
  for (const region of regions) {
    const parsed = regionSchema.safeParse(region);
    if (!parsed.success) {
      throw new StackConfigError(
        `invalid stack setting: ${source} holds ${JSON.stringify(region)}: a region is lower-case letters, digits and dashes (e.g. eu-west)`,
      );
    }
  }
  const seen = new Set<string>();
  for (const region of regions) {
    if (seen.has(region)) throw new StackConfigError(`invalid stack setting: ${source} names ${region} twice`);
    seen.add(region);
  }
  return regions;
}

/** The step between two regions' ports (SOUS_REGION_PORT_STEP), validated. */
export function regionPortStep(env: NodeJS.ProcessEnv): number {
  const text = env.SOUS_REGION_PORT_STEP;
  if (text === undefined || text === '') return DEFAULT_REGION_PORT_STEP;
  const step = Number(text);
  if (!Number.isInteger(step) || step < 10) {
    throw new StackConfigError(
      `invalid stack setting: SOUS_REGION_PORT_STEP must be a whole number of at least 10 (got ${JSON.stringify(text)})`,
    );
  }
  return step;
}

/** The stack of each region (pure): ports and folder derived from the first region's. */
export function regionStacks(
  base: StackConfig,
  regions: readonly string[],
  step: number = DEFAULT_REGION_PORT_STEP,
): RegionStack[] {
  const stacks = regions.map((region, index) => {
    const shift = index * step;
    const config: StackConfig = {
      ...base,
      pgPort: base.pgPort + shift,
      kafkaPort: base.kafkaPort + shift,
      kafkaControllerPort: base.kafkaControllerPort + shift,
      connectPort: base.connectPort + shift,
      stackDir: index === 0 ? base.stackDir : `${base.stackDir}-r${index}`,
    };
    return { region, index, config };
  });
  const owner = new Map<number, string>();
  for (const { region, config } of stacks) {
    for (const [name, port] of [
      ['SOUS_PG_PORT', config.pgPort],
      ['SOUS_KAFKA_PORT', config.kafkaPort],
      ['SOUS_KAFKA_CONTROLLER_PORT', config.kafkaControllerPort],
      ['SOUS_CONNECT_PORT', config.connectPort],
    ] as const) {
      if (port > 65535) {
        throw new StackConfigError(
          `invalid stack setting: region ${region}'s ${name} would be ${port} (over 65535): lower the base ports or SOUS_REGION_PORT_STEP`,
        );
      }
      const other = owner.get(port);
      if (other !== undefined) {
        throw new StackConfigError(
          `invalid stack setting: region ${region}'s ${name} would be ${port}, already a port of ${other}: choose another SOUS_REGION_PORT_STEP`,
        );
      }
      owner.set(port, `${region} (${name})`);
    }
  }
  return stacks;
}
