/**
 * Calls `stop` once, at the first SIGTERM or SIGINT; returns a function that
 * removes the listeners (once the stop is done). They stay registered while
 * the process stops (`on`, not `once`): execa's cleanup of subprocesses
 * (signal-exit) re-raises a signal for which it finds no listener but its
 * own, which killed a daemon in the middle of its teardown whenever a
 * SIGTERM arrived while some `wg` or `conntrack` ran — the records still in
 * memory and the clean close of the database lost with it.
 */
export function onStopSignal(
  stop: (signal: 'SIGTERM' | 'SIGINT') => void,
  emitter: { on(sig: string, f: () => void): unknown; off(sig: string, f: () => void): unknown } = process,
): () => void {
  let called = false;
  const handlers = (['SIGTERM', 'SIGINT'] as const).map((sig) => [sig, (): void => {
    if (called) return;
    called = true;
    stop(sig);
  }] as const);
  for (const [sig, h] of handlers) emitter.on(sig, h);
  return () => {
    for (const [sig, h] of handlers) emitter.off(sig, h);
  };
}
