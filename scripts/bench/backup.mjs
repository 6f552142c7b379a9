// Backup and restore at 10,000 peers and 1,000,000 request records (issue 12).
//
// Builds one gateway state in a temporary directory (no namespaces: backup
// touches no network): the CA, server and admin keys, 10,000 active peers with
// their preshared-key files and a certificate row each, and 1,000,000 request
// records, inserted through the repositories in big transactions. Then, BENCH_REPS
// times (default 3): `wg-ollama backup --out FILE` (the CLI process, the real
// scrypt cost, passphrase on stdin), `backup --verify FILE`, and `restore FILE`
// into a new state directory; wall-clock time and peak RSS (GNU time) of each,
// and the file size next to the database's.
//
//   sudo node scripts/bench/backup.mjs        (npm run build first; BENCH_PEERS, BENCH_RECORDS, BENCH_REPS)
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, OUT_DIR, ROOT, summary } from './lib.mjs';

const dist = (p) => import(join(ROOT, 'dist', p));
const PEERS = Number(process.env.BENCH_PEERS || 10_000);
const RECORDS = Number(process.env.BENCH_RECORDS || 1_000_000);
const REPS = Number(process.env.BENCH_REPS || 3);
const PASS = 'benchmark passphrase, long enough';

/** Runs the CLI under GNU time; resolves {ms, maxRssKiB, code, stdout, stderr}. */
function timed(args, input) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-f', '%M', process.execPath, BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => {
      const ms = performance.now() - t0;
      const lines = stderr.trim().split('\n');
      resolve({ ms, maxRssKiB: Number(lines.at(-1)), code, stdout, stderr: lines.slice(0, -1).join('\n') });
    });
    child.stdin.end(input);
  });
}

async function buildState(root) {
  const { parseConfig } = await dist('config.js');
  const { generateKeyPair } = await dist('core/keys.js');
  const { openDatabase } = await dist('db/open.js');
  const { peerRepository } = await dist('db/peers.js');
  const { certificateRepository } = await dist('db/certificates.js');
  const { requestRepository } = await dist('db/requests.js');
  const { pskStore } = await dist('gateway/psk-store.js');
  const { caStore } = await dist('gateway/ca-store.js');
  const { loadAdminKey } = await dist('admin/secret-box.js');
  const { writeSecretFile } = await dist('system/files.js');
  const stateDir = join(root, 'state');
  const file = join(root, 'config.json');
  const raw = { stateDir, interface: 'wgobk', listenPort: 51820, subnet: '10.66.0.0/16', endpoint: 'vpn.example.com:51820', ollamaHost: '192.168.1.10', ollamaPort: 11434 };
  writeFileSync(file, JSON.stringify(raw, null, 2) + '\n', { mode: 0o600 });
  const config = parseConfig(raw, file);
  mkdirSync(stateDir, { mode: 0o700 });
  writeSecretFile(config.paths.serverKey, generateKeyPair().privateKey + '\n');
  const { ca } = caStore(config.paths).ensure();
  loadAdminKey(config.paths.adminKey, true);
  const db = openDatabase(config.paths.db);
  const t0 = performance.now();
  try {
    const peers = peerRepository(db);
    const certs = certificateRepository(db);
    const psk = pskStore(config.paths.pskDir);
    const now = Date.now();
    const idOf = db.prepare('SELECT id FROM peers WHERE name = ?').pluck();
    const setSerial = db.prepare('UPDATE peers SET cert_serial = ? WHERE id = ?');
    const refs = [];
    for (let i = 0; i < PEERS; i++) refs.push(psk.write(generateKeyPair().privateKey));
    db.transaction(() => {
      for (let i = 0; i < PEERS; i++) {
        const addressInt = (10 << 24) + (66 << 16) + i + 2;
        const address = `10.66.${(i + 2) >> 8}.${(i + 2) & 255}`;
        const serial = (0x100000 + i).toString(16);
        peers.insert({ name: `peer${i}`, address, addressInt, publicKey: generateKeyPair().publicKey, pskRef: refs[i], expiresAt: null, now });
        const id = idOf.get(`peer${i}`);
        // A real certificate's size: the CA certificate's PEM stands in for each peer's.
        certs.insert({ serial, role: 'peer', peerId: id, guardId: null, commonName: `peer${i}`, notBefore: now, notAfter: now + 365 * 86_400_000, issuedAt: now, certPem: ca.certPem });
        setSerial.run(serial, id);
      }
    })();
    const requests = requestRepository(db);
    const BATCH = 50_000;
    for (let done = 0; done < RECORDS; done += BATCH) {
      const batch = [];
      for (let j = 0; j < Math.min(BATCH, RECORDS - done); j++) {
        const n = done + j;
        const p = n % PEERS;
        batch.push({
          seq: n + 1, at: now - (RECORDS - n) * 1000, peer: `peer${p}`, certSerial: (0x100000 + p).toString(16), source: `10.66.${(p + 2) >> 8}.${(p + 2) & 255}`,
          method: 'POST', path: '/api/chat', endpoint: 'chat', model: 'llama3.2:latest', promptSha256: randomBytes(32).toString('hex'), promptLength: 200 + (n % 800),
          promptText: null, status: n % 50 === 0 ? 429 : 200, bytesIn: 300 + (n % 900), bytesOut: 2000 + (n % 5000), promptTokens: 50 + (n % 400), evalTokens: 100 + (n % 600),
          ttfbMs: 120 + (n % 300), durationMs: 1500 + (n % 9000), refusal: n % 50 === 0 ? 'rate_limited' : null, auth: 'certificate',
        });
      }
      requests.insertBatch('gpu1', batch, 'bench');
    }
  } finally {
    db.close();
  }
  return { file, stateDir, buildMs: performance.now() - t0, dbBytes: statSync(config.paths.db).size };
}

async function main() {
  const root = mkdtempSync(join(tmpdir(), 'wgo-bench-backup-'));
  try {
    console.log(`building ${PEERS} peers and ${RECORDS} request records in ${root} ...`);
    const s = await buildState(root);
    console.log(`built in ${(s.buildMs / 1000).toFixed(1)} s; database ${(s.dbBytes / 2 ** 20).toFixed(1)} MiB`);
    const runs = [];
    for (let i = 0; i < REPS; i++) {
      const out = join(root, `b${i}.wgobak`);
      const b = await timed(['--config', s.file, 'backup', '--out', out, '--json'], `${PASS}\n`);
      if (b.code !== 0) throw new Error(`backup failed: ${b.stderr}`);
      const v = await timed(['backup', '--verify', out], `${PASS}\n`);
      if (v.code !== 0) throw new Error(`verify failed: ${v.stderr}`);
      const r = await timed(['--config', join(root, `r${i}.json`), 'restore', out, '--state-dir', join(root, `r${i}`)], `${PASS}\n`);
      if (r.code !== 0) throw new Error(`restore failed: ${r.stderr}`);
      const size = statSync(out).size;
      const counts = JSON.parse(b.stdout).manifest.counts;
      runs.push({ backupMs: b.ms, backupRssKiB: b.maxRssKiB, verifyMs: v.ms, restoreMs: r.ms, restoreRssKiB: r.maxRssKiB, fileBytes: size });
      console.log(`run ${i + 1}: backup ${b.ms.toFixed(0)} ms (RSS ${(b.maxRssKiB / 1024).toFixed(0)} MiB), verify ${v.ms.toFixed(0)} ms, restore ${r.ms.toFixed(0)} ms (RSS ${(r.maxRssKiB / 1024).toFixed(0)} MiB), file ${(size / 2 ** 20).toFixed(1)} MiB; counts ${JSON.stringify({ peers: counts.peers, certificates: counts.certificates, requests: counts.requests })}`);
      rmSync(join(root, `r${i}`), { recursive: true, force: true });
      rmSync(out, { force: true });
    }
    const result = {
      peers: PEERS, records: RECORDS, dbMiB: s.dbBytes / 2 ** 20, buildMs: s.buildMs,
      backupMs: summary(runs.map((r) => r.backupMs)), verifyMs: summary(runs.map((r) => r.verifyMs)), restoreMs: summary(runs.map((r) => r.restoreMs)),
      fileMiB: summary(runs.map((r) => r.fileBytes / 2 ** 20)), backupRssMiB: summary(runs.map((r) => r.backupRssKiB / 1024)), restoreRssMiB: summary(runs.map((r) => r.restoreRssKiB / 1024)),
    };
    mkdirSync(OUT_DIR, { recursive: true });
    writeFileSync(join(OUT_DIR, 'backup.json'), JSON.stringify(result, null, 2));
    console.log(JSON.stringify(result, null, 2));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
