import { SousError } from '../errors.js';
import { compileExpression } from '../recipe/expressions.js';
import type { InputMapping, RecipePlan, Step } from '../recipe/plan.js';
import { outputsRead } from '../recipe/validate.js';

/** A step that would read the output of a step resident in another region than its own. */
export interface ResidencyConflict {
  /** The reading step's id and where it is in the recipe. */
  readonly reader: string;
  readonly readerAt: string;
  /** Where the reader runs: its region, or the home region (every step but a task runs there). */
  readonly readerRegion: string;
  /** The resident step's id, and the region its output stays in. */
  readonly resident: string;
  readonly residentRegion: string;
  /** The output name the reader's expression names. */
  readonly output: string;
}

/** A recipe hands a resident output to a step of another region: refused when it is registered. */
export class ResidencyConflictError extends SousError {
  readonly code = 'SOUS_RESIDENCY_CONFLICT';
  readonly retryable = false;
  constructor(
    readonly recipe: string,
    readonly conflicts: readonly ResidencyConflict[],
  ) {
    super(
      `recipe ${recipe} hands resident outputs out of their region: ${conflicts
        .map(
          (c) =>
            `step ${c.reader} (${c.readerAt}, runs in ${c.readerRegion}) reads outputs.${c.output} of step ${c.resident}, resident in ${c.residentRegion}`,
        )
        .join('; ')}`,
    );
  }
}

interface Visited {
  readonly step: Step;
  readonly at: string;
}

function everyStep(plan: RecipePlan): Visited[] {
  const all: Visited[] = [];
  const visit = (steps: readonly Step[], path: string) =>
    steps.forEach((step, i) => {
      const at = `${path}[${i}]`;
      all.push({ step, at });
      if (step.type === 'parallel') step.branches.forEach((branch, b) => visit(branch, `${at}.branches[${b}]`));
      if (step.type === 'forEach') visit(step.steps, `${at}.steps`);
    });
  visit(plan.steps, 'steps');
  visit(plan.onFailure ?? [], 'onFailure');
  visit(plan.finally ?? [], 'finally');
  return all;
}

function mappingSources(mapping: InputMapping | undefined): string[] {
  if (mapping === undefined) return [];
  return 'expression' in mapping ? [mapping.expression] : Object.values(mapping.fields);
}

/** Every expression of a step (a `when` too: a claim check in it is as useless as in an input). */
function expressionsOf(step: Step): string[] {
  const sources = step.when === undefined ? [] : [step.when];
  if (step.type === 'task') sources.push(...mappingSources(step.input), ...mappingSources(step.compensate?.input));
  if (step.type === 'subRecipe') sources.push(...mappingSources(step.input));
  if (step.type === 'forEach') sources.push(step.items);
  if (step.type === 'sleep' && step.until !== undefined) sources.push(step.until);
  return sources;
}

/**
 * The steps of `plan` that read the output of a step resident in another region than
 * their own (pure). With regions, a task step whose region is not `home` keeps its output
 * in that region (the home region holds a claim check): only a task step of the same
 * region can read it. A step elsewhere, or one the home control plane evaluates (every
 * step but a task), would get the claim check, never the value, and fail at run time with
 * `residency_violation`; registration refuses it at once. Without a home region nothing
 * is resident. The recipe's own output may name a resident output: it is the claim check.
 */
export function residencyConflicts(plan: RecipePlan, home: string | undefined): ResidencyConflict[] {
  if (home === undefined) return [];
  const steps = everyStep(plan);
  const resident = new Map<string, { id: string; region: string }>();
  for (const { step } of steps) {
    if (step.type === 'task' && step.region !== undefined && step.region !== home) {
      resident.set(step.output, { id: step.id, region: step.region });
    }
  }
  if (resident.size === 0) return [];
  const conflicts: ResidencyConflict[] = [];
  for (const { step, at } of steps) {
    const runsIn = step.type === 'task' ? (step.region ?? home) : home;
    const read = new Set<string>();
    for (const source of expressionsOf(step)) {
      try {
        outputsRead(compileExpression(source).ast(), read);
      } catch {
        // An expression that does not parse is validatePlan's to report.
      }
    }
    for (const output of read) {
      const owner = resident.get(output);
      if (owner === undefined || owner.region === runsIn || owner.id === step.id) continue;
      conflicts.push({
        reader: step.id,
        readerAt: at,
        readerRegion: runsIn,
        resident: owner.id,
        residentRegion: owner.region,
        output,
      });
    }
  }
  return conflicts;
}

/** Throws ResidencyConflictError when the plan hands a resident output out of its region. */
export function assertResidencyKept(plan: RecipePlan, home: string | undefined): void {
  const conflicts = residencyConflicts(plan, home);
  if (conflicts.length > 0) throw new ResidencyConflictError(plan.name, conflicts);
}
