// sous recipe register | list | show
import { extname } from 'node:path';
import type { Command } from 'commander';
import { clientOf, integer, readText } from './common.js';
import { CliError, EXIT } from './exit-codes.js';
import { printJson, printLine, printList, table, time, type Io } from './output.js';

interface RecipeVersionData {
  name: string;
  version: number;
  checksum: string;
  plan: unknown;
  source: string | null;
  createdAt: string;
}

interface RecipeData {
  name: string;
  latestVersion: number;
  versions: RecipeVersionData[];
}

export function registerRecipeCommands(program: Command, io: Io): void {
  const recipe = program.command('recipe').description('register and inspect recipes');

  recipe
    .command('register')
    .description(
      'register a recipe from a YAML file, or a JSON plan (a .json file); the same plan again keeps its version',
    )
    .argument('<file>', 'recipe file ("-": YAML from stdin)')
    .option('--json', 'print the result as JSON')
    .action(async (file: string, options: { json?: boolean }, command: Command) => {
      const text = readText(file);
      let variables: Record<string, unknown>;
      if (extname(file).toLowerCase() === '.json') {
        try {
          variables = { json: JSON.parse(text) as unknown };
        } catch (error) {
          throw new CliError(EXIT.usage, 'SOUS_CLI_USAGE', `${file} is not JSON: ${(error as Error).message}`, {
            cause: error,
          });
        }
      } else {
        variables = { yaml: text };
      }
      const data = await clientOf(command).request<{
        registerRecipe: { name: string; version: number; checksum: string; created: boolean };
      }>(
        `mutation($yaml: String, $json: JSON) { registerRecipe(yaml: $yaml, json: $json) { name version checksum created } }`,
        variables,
      );
      const r = data.registerRecipe;
      if (options.json === true) printJson(io, r);
      else
        printLine(
          io,
          r.created
            ? `registered ${r.name} v${r.version} (checksum ${r.checksum.slice(0, 12)})`
            : `${r.name} v${r.version} unchanged: the same plan was registered before`,
        );
    });

  recipe
    .command('list')
    .description('every registered recipe with its latest version')
    .option('--json', 'print the recipes as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const data = await clientOf(command).request<{
        recipes: { name: string; latestVersion: number; versions: { version: number; createdAt: string }[] }[];
      }>(`query { recipes { name latestVersion versions { version createdAt } } }`);
      printList(io, options.json, data.recipes, ['NAME', 'LATEST', 'VERSIONS', 'UPDATED'], (r) => [
        r.name,
        `v${r.latestVersion}`,
        String(r.versions.length),
        time(r.versions.find((v) => v.version === r.latestVersion)?.createdAt),
      ]);
    });

  recipe
    .command('show')
    .description('a recipe: its versions, and the source (or plan) of one of them')
    .argument('<name>', 'recipe name')
    .option('--version <n>', 'which version to print (default: the latest)', integer(1))
    .option('--json', 'print the recipe with every version as JSON')
    .action(async (name: string, options: { version?: number; json?: boolean }, command: Command) => {
      const data = await clientOf(command).request<{ recipe: RecipeData | null }>(
        `query($name: String!) { recipe(name: $name) { name latestVersion versions { name version checksum plan source createdAt } } }`,
        { name },
      );
      const r = data.recipe;
      if (r === null) {
        throw new CliError(
          EXIT.refused,
          'SOUS_RECIPE_NOT_FOUND',
          `no recipe "${name}" (list them with "sous recipe list")`,
        );
      }
      if (options.json === true) {
        printJson(io, r);
        return;
      }
      const wanted = options.version ?? r.latestVersion;
      const version = r.versions.find((v) => v.version === wanted);
      if (version === undefined) {
        throw new CliError(
          EXIT.refused,
          'SOUS_RECIPE_NOT_FOUND',
          `recipe "${name}" has no version ${wanted} (versions: ${r.versions.map((v) => v.version).join(', ')})`,
        );
      }
      printLine(
        io,
        table(
          ['VERSION', 'CHECKSUM', 'REGISTERED'],
          r.versions.map((v) => [`v${v.version}`, v.checksum.slice(0, 12), time(v.createdAt)]),
        ),
      );
      printLine(io);
      printLine(io, `# ${r.name} v${version.version}`);
      printLine(io, (version.source ?? JSON.stringify(version.plan, null, 2)).trimEnd());
    });
}
