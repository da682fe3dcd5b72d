/**
 * Where a decision reads a forEach's item data. Items are fixed when the forEach opens
 * and never change, so reading them keeps a decision a function of (state, trigger):
 * the state holds only item references (indices in buckets), the data lives apart so a
 * large list is not rewritten with every decision.
 */
export interface ItemSource {
  /** The item at `index` of the forEach opened as `forEachKey`; undefined when there is none. */
  get(forEachKey: string, index: number): Promise<unknown>;
  /**
   * Item steps of these body steps that finished (completed or skipped) and whose state
   * left the execution state, by step key, with their outputs (null when skipped): what
   * a forEach's output and a rerun need once items have gone from the state.
   */
  finished(stepIds: readonly string[]): Promise<ReadonlyMap<string, unknown>>;
}

/** Items a decision opened, for the caller to store apart in the same transaction. */
export interface OpenedItems {
  readonly forEachKey: string;
  readonly items: readonly unknown[];
}

/** An ItemSource over items and finished item steps held in memory (tests, replays). */
export function memoryItemSource(
  items: ReadonlyMap<string, readonly unknown[]> = new Map(),
  finished: ReadonlyMap<string, unknown> = new Map(),
): ItemSource {
  return {
    get: (forEachKey, index) => Promise.resolve(items.get(forEachKey)?.[index]),
    finished: (stepIds) =>
      Promise.resolve(new Map([...finished].filter(([key]) => stepIds.some((id) => key.startsWith(`${id}[`))))),
  };
}
