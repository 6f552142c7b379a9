#!/usr/bin/env node
// Bundles the connector into one file an admin can hand to staff:
//   dist/connect/wg-ollama-connect.mjs   (run: node wg-ollama-connect.mjs NAME.connect.json)
// Everything it needs (undici, commander, zod) is inside; it needs Node.js >= 20 and
// nothing else: no node_modules, no native module, no root. Run by `npm run build`.
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist/connect/wg-ollama-connect.mjs');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
mkdirSync(dirname(out), { recursive: true });

await build({
  stdin: {
    // The entry: run the connector with this process's arguments; the exit code is the CLI contract's.
    contents: [
      "import { connectMain } from './src/connect/main.ts';",
      'process.exitCode = await connectMain(process.argv.slice(2), {',
      '  out: (t) => void process.stdout.write(t),',
      '  err: (t) => void process.stderr.write(t),',
      '});',
    ].join('\n'),
    resolveDir: root,
    sourcefile: 'wg-ollama-connect.mjs',
    loader: 'ts',
  },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  outfile: out,
  legalComments: 'eof',
  logLevel: 'warning',
  // undici and commander are CommonJS: give the bundle a require() for Node's built-in modules.
  banner: {
    js: [
      '#!/usr/bin/env node',
      `// wg-ollama-connect ${version}: one file, Node.js >= 20. Usage: node wg-ollama-connect.mjs NAME.connect.json [--check] [--listen IP:PORT]`,
      "import { createRequire as __wgoCreateRequire } from 'node:module';",
      'const require = __wgoCreateRequire(import.meta.url);',
    ].join('\n'),
  },
});
console.log(`built ${out}`);
