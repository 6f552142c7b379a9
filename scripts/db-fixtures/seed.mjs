#!/usr/bin/env node
// Builds a realistic gateway state with ONE OLD RELEASE's own code, for an upgrade fixture.
// Usage (make-db-fixtures.mjs runs it): unshare --net -- node seed.mjs TREE OUT
//   TREE  a built checkout of the release (bin/wg-ollama.js, dist/)
//   OUT   an empty directory: gets config.json, state/ and expect.json
// Every change goes through that release's CLI (argv arrays, secrets on stdin); what its
// CLI cannot make (connection events, request records) goes through its own repository
// modules from dist/. What the test should find after an upgrade is what that release's
// CLI printed (expect.json). Run it in an empty network namespace: the verbs that take
// access away touch the kernel when serve is not running.
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [treeArg, outArg] = process.argv.slice(2);
if (!treeArg || !outArg) {
  process.stderr.write('usage: seed.mjs TREE OUT\n');
  process.exit(2);
}
const TREE = resolve(treeArg);
const OUT = resolve(outArg);
const CONFIG = join(OUT, 'config.json');
const STATE = join(OUT, 'state');
const BIN = join(TREE, 'bin/wg-ollama.js');
const SINCE = '3650d';

/** Runs the release's CLI; throws with its stderr when it fails. */
function cli(args, input = '') {
  try {
    return execFileSync(process.execPath, [BIN, '--config', CONFIG, ...args], { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, WG_OLLAMA_CONFIG: '' } });
  } catch (e) {
    throw new Error(`wg-ollama ${args.join(' ')} failed (${e.status}): ${e.stderr}`);
  }
}
const cliJson = (args, input) => JSON.parse(cli([...args, '--json'], input));
const jsonLines = (args) => cli([...args, '--json']).split('\n').filter(Boolean).map((l) => JSON.parse(l));

/** What the release's CLI offers: its verbs and each verb's options, from its own --help. */
const helpOf = (args) => cli([...args, '--help']);
const verbs = new Set([...helpOf([]).matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]));
const has = (verb) => verbs.has(verb);
const hasOption = (verb, option) => has(verb.split(' ')[0]) && helpOf(verb.split(' ')).includes(option);

const expect = { verbs: [...verbs].sort(), peers: {}, certificates: [], policies: {}, tokens: {}, guards: [], admins: [] };

const fingerprint = (pem) => new X509Certificate(pem).fingerprint256;
function notePeer(name, out) {
  expect.peers[name] = { address: out.address, publicKey: out.publicKey };
  if (out.certificateSerial) expect.certificates.push({ peer: name, serial: out.certificateSerial, sha256: fingerprint(out.certificate) });
}
const ownPublicKey = () => {
  const { publicKey } = generateKeyPairSync('x25519');
  return publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
};

// 1. init (with the sync API's address where the release has guards on other hosts).
const init = ['init', '--endpoint', 'vpn.example.com:51820', '--ollama-host', '192.168.1.50', '--state-dir', STATE];
if (hasOption('init', '--sync-listen')) init.push('--sync-listen', '192.168.1.1:7443');
cli(init);

// 2. peers: plain, expiring, one to revoke, one with its own key, one to rotate.
for (const [name, extra] of [['alice', []], ['bob', ['--expires', SINCE]], ['carol', []], ['dave', ['--public-key', ownPublicKey()]], ['erin', []]]) {
  notePeer(name, cliJson(['add-peer', name, ...extra]));
}

// 3. policies, 4. an API token, 5. a guard, 6. admins: where the release has them.
if (has('set-policy')) {
  const alice = ['set-policy', 'alice', '--models', 'llama3.2,qwen2.5:*', '--rate', '30/min', '--tokens-per-day', '200000'];
  if (hasOption('set-policy', '--api-tokens')) alice.push('--api-tokens', 'on');
  expect.policies.alice = cliJson(alice).overrides ?? null;
  const erin = ['set-policy', 'erin', '--streams', '2'];
  if (hasOption('set-policy', '--max-num-ctx')) erin.push('--max-num-ctx', '8192');
  expect.policies.erin = cliJson(erin).overrides ?? null;
}
if (has('issue-token')) {
  const t = cliJson(['issue-token', 'alice']);
  expect.tokens.alice = { token: t.token };
}
if (has('add-guard')) {
  const g = cliJson(['add-guard', 'gpu1', '--address', '192.168.1.50', '--out', join(OUT, 'gpu1')]);
  expect.guards.push({ name: 'gpu1', address: '192.168.1.50' });
  void g;
}
if (has('drain-guard')) {
  // A pool of GPU hosts (schema 10): the router at ollamaHost, a member at an address the CA is
  // told to permit (as an admin would: ca.permit, then reissue-ca), drained.
  const config = JSON.parse(readFileSync(CONFIG, 'utf8'));
  writeFileSync(CONFIG, JSON.stringify({ ...config, ca: { ...(config.ca ?? {}), permit: ['192.168.1.0/24'] } }, null, 2));
  cli(['reissue-ca']);
  cliJson(['add-guard', 'edge', '--address', '192.168.1.50', '--router', '--out', join(OUT, 'edge')]);
  cliJson(['add-guard', 'gpu2', '--address', '192.168.1.51', '--member', '--parallel', '2', '--out', join(OUT, 'gpu2')]);
  cliJson(['drain-guard', 'gpu2']);
  expect.guards.push({ name: 'edge', address: '192.168.1.50', poolRole: 'router', parallel: null, draining: false });
  expect.guards.push({ name: 'gpu2', address: '192.168.1.51', poolRole: 'member', parallel: 2, draining: true });
}
if (has('admin')) {
  cli(['admin', 'add', 'root-admin', '--password-stdin'], 'correct horse battery staple\n');
  cli(['admin', 'add', 'viewer1', '--role', 'viewer', '--password-stdin'], 'another long passphrase\n');
  expect.admins.push({ name: 'root-admin', role: 'admin' }, { name: 'viewer1', role: 'viewer' });
}

// 7. take access away: disable, revoke, rotate.
cli(['disable-peer', 'bob']);
cli(['revoke-peer', 'carol']);
const rotated = cliJson(['rotate-peer', 'erin']);
notePeer('erin', rotated);

// 8. connection events and 9. request records, through the release's own repositories.
const importDist = (file) => import(pathToFileURL(join(TREE, 'dist', file)).href);
const { openDatabase } = await importDist('db/open.js');
const { connectionRepository } = await importDist('db/connections.js');
const db = openDatabase(join(STATE, 'wg-ollama.db'));
try {
  const id = (name) => db.prepare(`SELECT id FROM peers WHERE name = ? ORDER BY id DESC`).pluck().get(name);
  const now = Date.now();
  const link = (publicKey, endpoint, rx, tx) => ({
    publicKey, endpoint, latestHandshake: Math.floor(now / 1000) - 30, connected: true,
    rxSeen: rx, txSeen: tx, rxPending: 0, txPending: 0, rxTotal: rx, txTotal: tx, trafficAt: now,
  });
  const event = (kind, e = {}) => ({ kind, endpoint: null, oldEndpoint: null, rxBytes: null, txBytes: null, ...e });
  connectionRepository(db).saveTick(now - 60_000, [
    { peerId: id('alice'), state: link(expect.peers.alice.publicKey, '203.0.113.7:41000', 1000, 2000), events: [event('handshake', { endpoint: '203.0.113.7:41000' })] },
    { peerId: id('erin'), state: undefined, events: [event('handshake', { endpoint: '198.51.100.99:5000' })] },
  ]);
  connectionRepository(db).saveTick(now - 30_000, [
    { peerId: id('alice'), state: link(expect.peers.alice.publicKey, '203.0.113.8:41001', 5000, 9000), events: [
      event('endpoint_changed', { endpoint: '203.0.113.8:41001', oldEndpoint: '203.0.113.7:41000' }),
      event('traffic', { rxBytes: 4000, txBytes: 7000 }),
    ] },
    { peerId: id('erin'), state: undefined, events: [event('handshake_lost')] },
  ]);
  if (existsSync(join(TREE, 'dist/db/requests.js'))) {
    const { requestRepository } = await importDist('db/requests.js');
    const cert = (name) => expect.certificates.filter((c) => c.peer === name).at(-1)?.serial ?? null;
    const base = {
      method: 'POST', path: '/api/chat', endpoint: 'chat', model: 'llama3.2', promptSha256: createHash('sha256').update('hello').digest('hex'),
      promptLength: 5, promptText: null, bytesIn: 120, bytesOut: 4096, promptTokens: 12, evalTokens: 345, ttfbMs: 42.5,
      durationMs: 1234.25, refusal: null, auth: 'certificate', estimatedTokens: null,
    };
    const records = [
      { ...base, seq: 1, at: now - 20_000, peer: 'alice', certSerial: cert('alice'), source: expect.peers.alice.address, status: 200 },
      { ...base, seq: 2, at: now - 19_000, peer: 'alice', certSerial: cert('alice'), source: expect.peers.alice.address, status: 429, refusal: 'rate_limited', promptTokens: null, evalTokens: null, ttfbMs: null, bytesOut: 40 },
      { ...base, seq: 3, at: now - 18_000, peer: 'alice', certSerial: cert('alice'), source: expect.peers.alice.address, status: 200, auth: expect.tokens.alice ? 'token' : 'certificate', path: '/v1/chat/completions', endpoint: 'v1.chat' },
      { ...base, seq: 4, at: now - 17_000, peer: 'erin', certSerial: expect.certificates.find((c) => c.peer === 'erin')?.serial ?? null, source: expect.peers.erin.address, status: 403, refusal: 'model_not_allowed', model: 'mixtral', promptTokens: null, evalTokens: null },
      { ...base, seq: 5, at: now - 16_000, peer: null, certSerial: null, source: '10.66.0.99', status: 401, refusal: 'no_certificate', auth: null, method: 'GET', path: '/api/tags', endpoint: 'tags', model: null, promptSha256: null, promptLength: null, promptTokens: null, evalTokens: null },
    ];
    // Served through the pool router by a member, after a wait for its slot (schema 10).
    if (has('drain-guard')) records.push({ ...base, seq: 6, at: now - 15_000, peer: 'alice', certSerial: cert('alice'), source: expect.peers.alice.address, status: 200, host: 'gpu2', queueMs: 350 });
    requestRepository(db).insertBatch('gpu1', records, 'spool-fixture');
  }
} finally {
  db.close();
}

// 10. what the release itself reports now: that is what must survive the upgrade.
expect.list = cliJson(['list-peers', '--all']).map((p) => ({ name: p.name, address: p.address, publicKey: p.publicKey, status: p.status, expiresAt: p.expiresAt, revokedAt: p.revokedAt ?? null }));
expect.logs = { audit: jsonLines(['logs', 'audit', '--since', SINCE]), connections: jsonLines(['logs', 'connections', '--since', SINCE]) };
if (helpOf(['logs']).includes('requests')) expect.logs.requests = jsonLines(['logs', 'requests', '--since', SINCE]);
// Only the certificate of the CA (ca.crt, else the one in ca.key); its key stays out of the repository.
const caFile = [join(STATE, 'ca.crt'), join(STATE, 'ca.key')].find((f) => existsSync(f));
if (caFile) {
  const pem = readFileSync(caFile, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/);
  if (!pem) throw new Error(`no CA certificate in ${caFile}`);
  writeFileSync(join(OUT, 'ca.crt'), pem[0]);
  expect.caSha256 = fingerprint(pem[0]);
}
writeFileSync(join(OUT, 'expect.json'), JSON.stringify(expect, null, 2) + '\n');
