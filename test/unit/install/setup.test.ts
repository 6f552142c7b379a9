import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

/**
 * A new user's install: `npm ci` on a clean clone accepts the lockfile (it
 * once lacked rollup's optional platform packages: npm/cli#4828, a lockfile
 * written by `npm install` over an existing node_modules), and
 * scripts/setup.sh runs only `npm ci`, keeping apt-get, npm and the build
 * quiet unless they fail.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const RUN_LOGGED = join(ROOT, 'scripts/lib/run-logged.sh');
const PLATFORM_PACKAGE = 'node_modules/@rollup/rollup-linux-x64-gnu';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-setup-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A directory holding package.json and the lockfile (changed by `edit`). */
function project(name: string, edit: (lock: { packages: Record<string, unknown> }) => void = () => undefined): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(d, 'package.json'));
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
  edit(lock);
  writeFileSync(join(d, 'package-lock.json'), JSON.stringify(lock, null, 2));
  return d;
}

/** `npm ci` without installing anything: it checks that the lockfile and package.json agree (offline, no cache needed). */
async function npmCiDryRun(cwd: string) {
  return execa('npm', ['ci', '--dry-run', '--ignore-scripts', '--offline', '--no-audit', '--no-fund', '--cache', join(dir, 'npm-cache')], { cwd, reject: false, all: true });
}

const dropPlatformPackage = (lock: { packages: Record<string, unknown> }): void => {
  expect(lock.packages[PLATFORM_PACKAGE], `${PLATFORM_PACKAGE} is in the lockfile`).toBeDefined();
  delete lock.packages[PLATFORM_PACKAGE];
};

describe('the lockfile', () => {
  test('npm ci accepts it as it is', async () => {
    const r = await npmCiDryRun(project('as-is'));
    expect(r.all).not.toMatch(/not in sync|Missing:/);
    expect(r.exitCode).toBe(0);
  });

  test('npm ci refuses it with one optional platform package missing (the check can fail)', async () => {
    const r = await npmCiDryRun(project('missing', dropPlatformPackage));
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/Missing: @rollup\/rollup-linux-x64-gnu@[\d.]* from lock file/);
  });

  test('every optional dependency of every locked package has its own entry', () => {
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { optionalDependencies?: Record<string, string> }> };
    const missing: string[] = [];
    for (const [path, pkg] of Object.entries(lock.packages)) {
      for (const dep of Object.keys(pkg.optionalDependencies ?? {})) {
        // npm resolves a dependency in the package's own node_modules first, then up the tree.
        const candidates = [`${path ? `${path}/` : ''}node_modules/${dep}`, `node_modules/${dep}`];
        if (!candidates.some((c) => lock.packages[c])) missing.push(`${path || '(root)'} -> ${dep}`);
      }
    }
    expect(missing).toEqual([]);
  });

  test('package.json pins every dependency to an exact version', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    const loose = Object.entries({ ...pkg.dependencies, ...pkg.devDependencies }).filter(([, v]) => !/^\d+\.\d+\.\d+$/.test(v));
    expect(loose).toEqual([]);
  });
});

describe('run_logged (scripts/lib/run-logged.sh)', () => {
  const run = (log: string, script: string) =>
    execa('bash', ['-c', `. "$1"; run_logged "$2" "step: done" bash -c "$3"`, 'bash', RUN_LOGGED, log, script], { reject: false });

  test('success: one line on stdout, nothing on stderr, the output in the log', async () => {
    const log = join(dir, 'ok.log');
    const r = await run(log, 'seq 1 300; echo noise >&2');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('step: done');
    expect(r.stderr).toBe('');
    expect(readFileSync(log, 'utf8').split('\n')).toHaveLength(302);
  });

  test('failure: the error lines and the last lines of the log, its path, and the exit status', async () => {
    const log = join(dir, 'fail.log');
    const r = await run(log, 'for i in $(seq 1 200); do echo "line $i"; done; echo "E: Unable to locate package nope"; seq 1000 1030; exit 7');
    expect(r.exitCode).toBe(7);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n');
    expect(lines[0]).toMatch(/^setup: "bash -c .*" failed \(exit 7\)$/);
    expect(lines).toContain('  | E: Unable to locate package nope');
    expect(lines).toContain('  | 1030');
    expect(lines).not.toContain('  | line 100');
    expect(lines.at(-1)).toBe(`setup: the whole log is ${log}`);
    expect(lines.length).toBeLessThan(50);
  });

  // setup.sh runs with `set -euo pipefail`: no pipeline in the report may end it early.
  const strict = (log: string, script: string) =>
    execa('bash', ['-c', `set -euo pipefail; . "$1"; run_logged "$2" "step: done" bash -c "$3"`, 'bash', RUN_LOGGED, log, script], { reject: false });

  test.each([
    ['many error lines (grep would be cut off)', 'for i in $(seq 1 20000); do echo "npm error line $i"; done; exit 1'],
    ['no error line in a long log (grep finds nothing)', 'seq 1 500; exit 1'],
  ])('under set -euo pipefail, %s: the report still ends naming the log', async (_what, script) => {
    const log = join(dir, `strict-${_what.length}.log`);
    const r = await strict(log, script);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`setup: the whole log is ${log}`);
  });

  test('a short log is shown whole', async () => {
    const r = await run(join(dir, 'short.log'), 'echo one; echo two; exit 3');
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain('  | one\n  | two\n');
  });
});

describe('scripts/setup.sh', () => {
  test('npm ci refusing the lockfile: setup fails, shows npm\'s error and the log, and installs nothing else', async () => {
    if (process.getuid?.() !== 0) throw new Error('setup.sh runs as root: run the unit tests as root (scripts/test.sh does)');
    const setup = readFileSync(join(ROOT, 'scripts/setup.sh'), 'utf8');
    // The Debian packages must be there already, or this test would install them.
    const packages = /^packages=\(([^)]*)\)/m.exec(setup)![1]!.trim().split(/\s+/);
    const missing: string[] = [];
    for (const p of packages) {
      const q = await execa('dpkg-query', ['-W', '-f=${Status}', p], { reject: false });
      if (!q.stdout.includes('install ok installed')) missing.push(p);
    }
    expect(missing, 'Debian packages setup.sh installs (run scripts/setup.sh first)').toEqual([]);

    const clone = project('clone', dropPlatformPackage);
    mkdirSync(join(clone, 'scripts/lib'), { recursive: true });
    copyFileSync(join(ROOT, 'scripts/setup.sh'), join(clone, 'scripts/setup.sh'));
    copyFileSync(RUN_LOGGED, join(clone, 'scripts/lib/run-logged.sh'));
    // timeout(1) signals its whole process group: a fallback `npm install` would not outlive the test.
    const r = await execa('timeout', ['-k', '5', '45', 'bash', join(clone, 'scripts/setup.sh')], {
      reject: false, env: { TMPDIR: clone, npm_config_cache: join(dir, 'npm-cache') },
    });
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^setup: "npm ci .*" failed \(exit \d+\)$/m);
    expect(r.stderr).toMatch(/Missing: @rollup\/rollup-linux-x64-gnu@[\d.]* from lock file/);
    const log = /^setup: the whole log is (.*)$/m.exec(r.stderr)?.[1];
    expect(log && existsSync(log)).toBe(true);
    // No fallback to `npm install`: nothing was installed, and no build ran.
    expect(existsSync(join(clone, 'node_modules'))).toBe(false);
    expect(existsSync(join(clone, 'dist'))).toBe(false);
  }, 60_000);
});
