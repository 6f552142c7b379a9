import type { Runner } from './exec.js';

/**
 * Makes everything written to the file system holding `path` durable at once
 * (`sync -f`: syncfs(2)). Cheaper than an fsync per file when a restore writes
 * thousands of small key files.
 */
export function syncFileSystem(run: Runner): (path: string) => Promise<void> {
  return async (path) => {
    await run('sync', ['-f', path]);
  };
}
