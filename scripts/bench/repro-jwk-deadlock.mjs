// Evidence for a Node.js bug that src/core/keys.ts was exposed to (fixed in 58d9077 by exporting DER): generating
// x25519 key pairs and exporting them as JWK (what generateKeyPair() did)
// deadlocks the main thread after a few thousand keys on Node 20.20.2. gdb:
//   ExportJWKEdKey -> String::NewFromOneByte -> GC -> weak callbacks ->
//   ~KeyGenJob -> uv_mutex_lock (a mutex the export already holds).
// Exporting DER (pkcs8/spki, raw key = last 32 bytes) does not hang.
// Each variant runs in a child process, killed after 20 s; `src` runs wg-ollama's
// generateKeyPair() from dist/core/keys.js (build first).
//   node scripts/bench/repro-jwk-deadlock.mjs
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';

const N = 40_000;
if (process.argv[2] === 'child') {
  const jwk = process.argv[3] === 'jwk';
  if (process.argv[3] === 'src') {
    // wg-ollama's own generateKeyPair() (dist/core/keys.js), as PeerService.add calls it.
    const { generateKeyPair } = await import(new URL('../../dist/core/keys.js', import.meta.url).href);
    for (let i = 0; i < N; i++) generateKeyPair();
    process.exit(0);
  }
  for (let i = 0; i < N; i++) {
    const k = generateKeyPairSync('x25519');
    if (jwk) {
      k.privateKey.export({ format: 'jwk' });
      k.publicKey.export({ format: 'jwk' });
    } else {
      k.privateKey.export({ type: 'pkcs8', format: 'der' });
      k.publicKey.export({ type: 'spki', format: 'der' });
    }
  }
  process.exit(0);
}
console.log(`node ${process.version}: ${N} x25519 key pairs, each exported; a run that takes over 20 s is hung`);
for (const variant of ['jwk', 'der', 'src', 'jwk', 'der', 'src']) {
  const t = Date.now();
  const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, 'child', variant], { timeout: 20_000, killSignal: 'SIGKILL' });
  const ms = Date.now() - t;
  console.log(`${variant}: ${r.status === 0 ? `finished in ${ms} ms` : `HUNG (killed after ${ms} ms)`}`);
}
