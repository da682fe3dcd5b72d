/*
 * SIGTERM / SIGINT for every worker of the process at once: all of them drain, then the
 * signal is raised again when nothing else listens for it, so the process ends as it
 * would have without us. A second signal during the drain has its default effect (our
 * listeners are gone by then): an impatient operator can still kill at once.
 */

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;
type Signal = (typeof SIGNALS)[number];

const stoppers = new Set<() => Promise<void>>();

function onSignal(signal: Signal): void {
  for (const s of SIGNALS) process.off(s, onSignal);
  const stopping = [...stoppers].map((stop) => stop());
  stoppers.clear();
  void Promise.allSettled(stopping).then(() => {
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  });
}

/** Calls `stop` on SIGTERM or SIGINT. Returns a function that undoes it. */
export function stopOnSignals(stop: () => Promise<void>): () => void {
  if (stoppers.size === 0) for (const s of SIGNALS) process.on(s, onSignal);
  stoppers.add(stop);
  return () => {
    stoppers.delete(stop);
    if (stoppers.size === 0) for (const s of SIGNALS) process.off(s, onSignal);
  };
}
