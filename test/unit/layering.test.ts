import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The house's floors, top to bottom: a folder (or top-level file) of src/ may
 * import only from a floor below its own, never from its own floor's other
 * rooms and never from above. So no arrow runs back up and no two folders
 * import each other.
 */
const FLOORS: readonly (readonly string[])[] = [
  ['cli'], // argv → services
  ['daemon'], // `serve`: the composition root, start-up and teardown
  ['admin'], // the admin web UI
  ['gateway'], // services, reconciler, monitor, sync API, queries
  ['guard', 'connect'], // the programs that run elsewhere: GPU host, staff laptop
  ['db', 'system', 'pki', 'config.ts'], // storage, side effects, the CA, the config file
  ['core'], // pure logic
  ['errors.ts'], // the one error type
];

const SRC = join(dirname(fileURLToPath(import.meta.url)), '../../src');
const IMPORT_RE = /(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g;

interface Edge {
  file: string; // relative to src/, e.g. gateway/serve.ts
  spec: string; // as written, e.g. ../admin/server.js
}

/** The room a path under src/ belongs to: its first folder, or the file itself at the top. */
function roomOf(path: string): string {
  const [first, ...rest] = path.split('/');
  return rest.length ? first! : first!.replace(/\.js$/, '.ts');
}

function floorOf(room: string): number {
  return FLOORS.findIndex((f) => f.includes(room));
}

/** Every import that crosses from one room to another and is not allowed, as readable lines. */
function violations(edges: readonly Edge[]): string[] {
  const out: string[] = [];
  for (const { file, spec } of edges) {
    const target = posix.normalize(posix.join(posix.dirname(file), spec));
    if (target.startsWith('..')) continue; // outside src/
    const from = roomOf(file);
    const to = roomOf(target);
    if (from === to) continue;
    const a = floorOf(from);
    const b = floorOf(to);
    if (a < 0) out.push(`src/${file}: its folder "${from}" has no floor (add it to FLOORS)`);
    else if (b < 0) out.push(`src/${file} imports '${spec}': "${to}" has no floor (add it to FLOORS)`);
    else if (b <= a) out.push(`src/${file} imports '${spec}': ${from} may not import ${to} (${b < a ? 'a floor above' : 'the same floor'})`);
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sourceFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

function edgesOf(files: readonly string[]): Edge[] {
  return files.flatMap((f) => {
    const file = relative(SRC, f).split('\\').join('/');
    return [...readFileSync(f, 'utf8').matchAll(IMPORT_RE)].map((m) => ({ file, spec: m[1]! }));
  });
}

describe('layering of src/', () => {
  it('the checker names an import from a floor above, from the same floor, and from an unknown folder', () => {
    expect(violations([
      { file: 'gateway/serve.ts', spec: '../admin/server.js' },
      { file: 'db/peers.ts', spec: '../system/exec.js' },
      { file: 'lost/thing.ts', spec: '../core/ipv4.js' },
      { file: 'cli/main.ts', spec: '../daemon/serve.js' },
      { file: 'core/ipv4.ts', spec: '../errors.js' },
      { file: 'gateway/context.ts', spec: './ca-store.js' },
    ])).toEqual([
      `src/gateway/serve.ts imports '../admin/server.js': gateway may not import admin (a floor above)`,
      `src/db/peers.ts imports '../system/exec.js': db may not import system (the same floor)`,
      'src/lost/thing.ts: its folder "lost" has no floor (add it to FLOORS)',
    ]);
  });

  it('no folder imports one above it and no two folders import each other', () => {
    const edges = edgesOf(sourceFiles(SRC));
    // The scan sees the imports it judges (a broken pattern would pass vacuously).
    expect(edges.some((e) => e.file === 'cli/main.ts' && e.spec.startsWith('../gateway/'))).toBe(true);
    expect(edges.some((e) => e.file === 'config.ts' && e.spec === './errors.js')).toBe(true);
    expect(violations(edges)).toEqual([]);
  });
});
