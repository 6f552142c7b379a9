#!/usr/bin/env node
// Sign-in timing (issue 4: "the same answer and timing for an unknown user and a wrong password").
// Runs accountService.login (dist/) on a temporary database: an unknown name, a known name with a
// wrong password, and a known name with the right password but a wrong code, interleaved, N rounds.
// The throttle table is emptied between attempts (only here), so every attempt does the full work.
// Prints medians and the ratios to the unknown-name case.   node scripts/bench/admin-login.mjs [N]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(import.meta.url), '../../..');
const { openDatabase } = await import(join(ROOT, 'dist/db/open.js'));
const { accountService } = await import(join(ROOT, 'dist/admin/accounts.js'));
const { createSecretBox } = await import(join(ROOT, 'dist/admin/secret-box.js'));

const N = Number(process.argv[2] ?? 40);
const dir = mkdtempSync(join(tmpdir(), 'wgo-login-bench-'));
try {
  const db = openDatabase(join(dir, 'bench.db'));
  const box = createSecretBox(randomBytes(32));
  const accounts = accountService({ db, box: () => box });
  const password = 'a long enough benchmark password';
  await accounts.add({ name: 'alice', role: 'admin', password }, { actor: 'bench', source: 'bench' });
  const cases = {
    'unknown name': { name: 'nobody', password, code: '123456' },
    'wrong password': { name: 'alice', password: 'not the password at all', code: '123456' },
    'wrong code': { name: 'alice', password, code: '000000' },
  };
  const times = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let i = 0; i < 3; i++) for (const c of Object.values(cases)) await accounts.login(c, '192.0.2.9'); // warm-up
  for (let i = 0; i < N; i++) {
    for (const [k, c] of Object.entries(cases)) {
      db.exec('DELETE FROM login_throttle');
      const t = process.hrtime.bigint();
      const r = await accounts.login(c, '192.0.2.9');
      times[k].push(Number(process.hrtime.bigint() - t) / 1e6);
      if (r.ok || r.reason !== 'invalid') throw new Error(`${k}: unexpected ${JSON.stringify(r)}`);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(times['unknown name']);
  console.log(`sign-in failures, ${N} rounds interleaved, node ${process.version}`);
  console.log('| case | median ms | p10–p90 ms | ratio to unknown name |');
  console.log('|---|---|---|---|');
  for (const [k, xs] of Object.entries(times)) {
    const s = [...xs].sort((a, b) => a - b);
    console.log(`| ${k} | ${median(xs).toFixed(1)} | ${s[Math.floor(N * 0.1)].toFixed(1)}–${s[Math.floor(N * 0.9)].toFixed(1)} | ${(median(xs) / base).toFixed(2)} |`);
  }
  db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
