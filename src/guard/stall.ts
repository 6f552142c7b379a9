/**
 * Watches an answer held back by backpressure: `blocked()` when the client's socket stops taking
 * data (the upstream read is paused), `drained()` when it has taken everything. A client that
 * has not drained within `ms` of being blocked — reading nothing, or a trickle — gets `onStall`:
 * the answer is cut, so a reader that never reads cannot hold an upstream slot until
 * maxRequestSec.
 */
export function watchStall(ms: number, onStall: () => void) {
  let timer: NodeJS.Timeout | undefined;
  const stop = (): void => {
    clearTimeout(timer);
    timer = undefined;
  };
  return {
    blocked(): void {
      timer ??= setTimeout(() => {
        timer = undefined;
        onStall();
      }, ms);
    },
    drained: stop,
    stop,
  };
}
