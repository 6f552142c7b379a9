#!/usr/bin/env node
// Makes the upgrade fixtures in test/fixtures/db/: for each schema version N (1 .. the
// number of migrations at REF), the database state that the release of that schema made
// itself. See test/fixtures/db/README.md.
//
//   sudo node scripts/make-db-fixtures.mjs [--ref main] [--only N] [--force] [--keep]
//
// For each version it has no fixture of yet (all with --force, one with --only N):
//   1. picks the commit: the newest commit on REF's first-parent line whose
//      src/db/migrations.ts has N migrations (the last state of main before migration N+1);
//   2. checks it out into a temporary git worktree (removed afterwards; --keep keeps it);
//   3. installs its dependencies from its own lockfile: hard links of this checkout's
//      node_modules when every package that lockfile locks is installed here at the same
//      version and integrity, else `npm ci` (quiet; its log is shown if it fails);
//   4. builds it (`npm run build`), and runs db-fixtures/seed.mjs against it in an empty
//      network namespace (unshare --net: the old CLI's kernel calls touch nothing of the host);
//   5. writes vN.sql (a faithful SQL dump, checked by loading it back), vN.expect.json (what
//      that release's CLI reported) and vN.ca.crt, and records the commit in manifest.json.
// Needs root (unshare), git, and this checkout's node_modules.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { transformSync } from 'esbuild';
import { dumpDatabase, verifyDump } from './db-fixtures/sqlite-dump.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const FIXTURES = join(ROOT, 'test/fixtures/db');
const MANIFEST = join(FIXTURES, 'manifest.json');
const MIGRATIONS_FILE = 'src/db/migrations.ts';

const { values: opts } = parseArgs({ options: { ref: { type: 'string', default: 'HEAD' }, only: { type: 'string' }, force: { type: 'boolean' }, keep: { type: 'boolean' } } });

const git = (...args) => execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 }).trim();
const log = (line) => process.stderr.write(`${line}\n`);

/** Runs a command quietly; on failure prints what it said and stops. */
function quiet(cmd, args, cwd, what) {
  try {
    execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (e) {
    process.stderr.write(`${what} failed (${cmd} ${args.join(' ')} in ${cwd}):\n${e.stdout ?? ''}${e.stderr ?? ''}\n`);
    process.exit(1);
  }
}

/** How many migrations a version of migrations.ts has: the file itself, compiled and imported. */
const countCache = new Map();
async function migrationCount(blob) {
  if (!countCache.has(blob)) {
    const { code } = transformSync(git('cat-file', 'blob', blob), { loader: 'ts', format: 'esm' });
    const mod = await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`);
    countCache.set(blob, mod.MIGRATIONS.length);
  }
  return countCache.get(blob);
}

/** Schema version → the newest first-parent commit of REF with that many migrations. */
async function releasesOf(ref) {
  const found = new Map();
  for (const line of git('rev-list', '--first-parent', '--format=%H', ref).split('\n')) {
    if (line.startsWith('commit ')) continue;
    let blob;
    try {
      blob = git('rev-parse', `${line}:${MIGRATIONS_FILE}`);
    } catch {
      continue; // before the database existed
    }
    const n = await migrationCount(blob);
    if (n > 0 && !found.has(n)) found.set(n, line);
  }
  return found;
}

/** Every package the lockfile locks is installed here at the same version and integrity (absent optional platform packages aside). */
function installedHere(lockText) {
  const hidden = join(ROOT, 'node_modules/.package-lock.json');
  if (!existsSync(hidden)) return false;
  const here = JSON.parse(readFileSync(hidden, 'utf8')).packages ?? {};
  for (const [path, e] of Object.entries(JSON.parse(lockText).packages ?? {})) {
    if (path === '' || e.link) continue;
    const h = here[path];
    if (!h && e.optional) continue;
    if (!h || h.version !== e.version || (e.integrity && h.integrity !== e.integrity)) return false;
  }
  return true;
}

function makeFixture(version, commit) {
  const tree = mkdtempSync(join(tmpdir(), `wgo-fixture-v${version}-`));
  const out = mkdtempSync(join(tmpdir(), `wgo-fixture-v${version}-out-`));
  rmSync(tree, { recursive: true });
  const subject = git('log', '-1', '--format=%s', commit);
  log(`schema ${version}: ${commit.slice(0, 12)} ${subject}`);
  try {
    git('worktree', 'add', '--detach', '--quiet', tree, commit);
    if (installedHere(readFileSync(join(tree, 'package-lock.json'), 'utf8'))) {
      log('  dependencies: hard links of this checkout\'s node_modules (every locked package installed at the same version)');
      execFileSync('cp', ['-al', join(ROOT, 'node_modules'), join(tree, 'node_modules')]);
    } else {
      log('  dependencies: npm ci');
      quiet('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], tree, 'npm ci');
    }
    quiet('npm', ['run', 'build', '--silent'], tree, 'the build');
    quiet('unshare', ['--net', '--', process.execPath, join(ROOT, 'scripts/db-fixtures/seed.mjs'), tree, out], ROOT, 'the seed');
    const db = join(out, 'state/wg-ollama.db');
    const date = git('log', '-1', '--format=%cI', commit);
    const sql = dumpDatabase(db, [`wg-ollama database at schema version ${version}, made by scripts/make-db-fixtures.mjs`, `from commit ${commit} (${date})`, 'test keys only: see README.md']);
    verifyDump(db, sql);
    const files = { sql: `v${version}.sql`, expect: `v${version}.expect.json`, ca: existsSync(join(out, 'ca.crt')) ? `v${version}.ca.crt` : null };
    writeFileSync(join(FIXTURES, files.sql), sql);
    copyFileSync(join(out, 'expect.json'), join(FIXTURES, files.expect));
    if (files.ca) copyFileSync(join(out, 'ca.crt'), join(FIXTURES, files.ca));
    return { commit, subject, committed: date, made: new Date().toISOString(), node: process.version, files };
  } finally {
    if (opts.keep) log(`  kept ${tree} and ${out}`);
    else {
      git('worktree', 'remove', '--force', tree);
      rmSync(out, { recursive: true, force: true });
    }
  }
}

if (process.getuid?.() !== 0) {
  log('make-db-fixtures needs root (it runs each old CLI in its own network namespace with unshare --net)');
  process.exit(1);
}
mkdirSync(FIXTURES, { recursive: true });
const manifest = existsSync(MANIFEST) ? JSON.parse(readFileSync(MANIFEST, 'utf8')) : { versions: {} };
const releases = await releasesOf(opts.ref);
const latest = Math.max(...releases.keys());
for (let n = 1; n <= latest; n++) if (!releases.has(n)) throw new Error(`no commit of ${opts.ref} has exactly ${n} migrations`);
const wanted = opts.only ? [Number(opts.only)] : [...releases.keys()].sort((a, b) => a - b).filter((n) => opts.force || !manifest.versions[n]);
for (const n of wanted) {
  if (!releases.has(n)) throw new Error(`schema version ${n} is not one of ${opts.ref} (1..${latest})`);
  manifest.versions[n] = makeFixture(n, releases.get(n));
  manifest.schemaVersion = Math.max(manifest.schemaVersion ?? 0, n);
  // Written after each fixture: an interrupted run keeps what it made.
  writeFileSync(MANIFEST, JSON.stringify(manifest, null, 2) + '\n');
}
log(wanted.length ? `made ${wanted.map((n) => `v${n}`).join(', ')} in ${FIXTURES}` : `nothing to make: every schema version 1..${latest} has a fixture (--force or --only N to remake)`);
