import { describe, expect, it } from 'vitest';
import { createTeardown } from '../../../src/daemon/teardown.js';

describe('the daemon teardown (one way down)', () => {
  it('halts new work first, then waits for the running work while closing services newest first, then closes the database', async () => {
    const seen: string[] = [];
    let finishReconcile = (): void => undefined;
    const down = createTeardown(() => seen.push('db'));
    down.halt(() => seen.push('timers'));
    down.drain(() => new Promise<void>((resolve) => {
      seen.push('reconcile: waiting');
      finishReconcile = () => {
        seen.push('reconcile: done');
        resolve();
      };
    }));
    down.service({ close: () => void seen.push('sync api') });
    down.service({ close: async () => {
      await new Promise((r) => setTimeout(r, 10));
      seen.push('guard');
    } });
    expect(down.service(null)).toBeNull(); // a service turned off in the config
    down.service({ close: () => void seen.push('admin ui') });
    down.halt(() => seen.push('control socket'));

    expect(down.stopping).toBe(false);
    const running = down.run();
    expect(down.stopping).toBe(true);
    await new Promise((r) => setTimeout(r, 30));
    expect(seen).not.toContain('db'); // the reconcile is still running
    finishReconcile();
    await running;
    expect(seen).toEqual(['timers', 'control socket', 'reconcile: waiting', 'admin ui', 'guard', 'sync api', 'reconcile: done', 'db']);
  });

  it('runs once: a second signal (or a failure during stop) gets the same promise', async () => {
    let closed = 0;
    let halted = 0;
    const down = createTeardown(() => closed++);
    down.halt(() => halted++);
    const a = down.run();
    const b = down.run();
    expect(b).toBe(a);
    await b;
    expect({ closed, halted }).toEqual({ closed: 1, halted: 1 });
  });

  it('closes the database even when a service fails to close, and reports that failure', async () => {
    let closed = false;
    const down = createTeardown(() => (closed = true));
    down.service({ close: () => Promise.reject(new Error('close failed')) });
    await expect(down.run()).rejects.toThrow('close failed');
    expect(closed).toBe(true);
  });
});
