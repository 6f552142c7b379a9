/**
 * Polls `cond` until it holds and returns the milliseconds it took; fails
 * naming what it waited for once `timeoutMs` pass. `what` may be a function,
 * read only when the wait fails (to name what the test saw by then).
 * The one wait every test uses: unit tests poll often (cheap checks), the
 * lab's harness passes a slower interval for checks that run commands.
 */
export async function waitFor(
  cond: () => Promise<boolean> | boolean,
  timeoutMs = 2000,
  what: string | (() => string) = 'condition',
  everyMs = 10,
): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
