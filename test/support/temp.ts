import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';

const outsideTests = new Set<string>();
const removeAll = (): void => {
  for (const dir of outsideTests) rmSync(dir, { recursive: true, force: true });
};

/**
 * A private temp dir (wgo-NAME-XXXXXX). Made inside a test, it is removed when
 * that test finishes, passed or failed; made in a hook, when the test process
 * exits.
 */
export function testDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `wgo-${name}-`));
  try {
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  } catch {
    if (outsideTests.size === 0) process.once('exit', removeAll);
    outsideTests.add(dir);
  }
  return dir;
}
