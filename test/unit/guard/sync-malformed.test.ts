/**
 * A gateway answering the sync client with a malformed peer set (another
 * version, a bug, a proxy in between): the set is refused with an error that
 * names the field, and the set in force stays in force and stays saved.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import type { PeerSet } from '../../../src/core/wire.js';
import { openSpool, type Spool } from '../../../src/guard/spool.js';
import { startSyncClient, type SyncClient } from '../../../src/guard/sync-client.js';
import { issueCertificate } from '../../../src/pki/ca.js';
import { testCa } from '../../support/ca.js';
import { waitFor } from '../../support/wait.js';

const DAY = '2026-12-04';
const saved: PeerSet = { version: '7.abc', peers: [], logPrompts: false, tokensToday: {}, day: DAY, recordFields: ['auth', 'estimatedTokens'] };

let dir: string;
let server: Server;
let spool: Spool;
let client: SyncClient | null;
let answer: unknown;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-sync-malformed-'));
  const gw = issueCertificate(testCa(), { role: 'gateway-server', commonName: 'gateway', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 86_400_000) });
  server = createServer({ key: gw.keyPem, cert: gw.certPem, ca: testCa().certPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://gateway');
    if (url.pathname === '/v1/peers' && url.searchParams.get('after') === '') {
      const text = JSON.stringify(answer);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      return void res.end(text);
    }
    if (url.pathname === '/v1/peers') {
      // Nothing new: held a moment, then 204, as the real long-poll does.
      return void setTimeout(() => { res.writeHead(204); res.end(); }, 200);
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"unknown sync endpoint"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  spool = openSpool(join(dir, 'spool.db'));
  spool.savePeerSet(saved);
  client = null;
});

afterEach(async () => {
  await client?.stop();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  spool.close();
  rmSync(dir, { recursive: true, force: true });
});

const peer = { name: 'alice', address: '10.66.0.2', serial: 'ab12', expiresAt: null, policy: {}, tokenSha256: null };

function start(got: PeerSet[]): SyncClient {
  const guard = issueCertificate(testCa(), { role: 'guard-client', commonName: 'guard:gpu1', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 86_400_000) });
  client = startSyncClient({
    gatewayUrl: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tls: { ca: testCa().certPem, cert: guard.certPem, key: guard.keyPem },
    spool,
    onPeerSet: (s) => void got.push(s),
    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
  });
  return client;
}

test.each([
  ['a serial that is not hex', { ...saved, version: '8.abc', peers: [{ ...peer, serial: 'XYZ' }] }, 'peers.0.serial'],
  ['a policy field this guard does not know', { ...saved, version: '8.abc', peers: [{ ...peer, policy: { maxStreams: 2, teleport: true } }] }, 'peers.0.policy'],
  ['no tokensToday', { version: '8.abc', peers: [], logPrompts: false, day: DAY }, 'tokensToday'],
])('%s: refused with an error naming the field; the saved set stays in force', async (_what, malformed, field) => {
  answer = malformed;
  const got: PeerSet[] = [];
  const c = start(got);
  await waitFor(() => c.state().lastError !== null, 5000, 'the refusal');
  const err = c.state().lastError!;
  expect(err).toContain('peer set');
  expect(err).toContain(`${field}:`);
  // One line for the log and /healthz, not a dump of the schema's issues.
  expect(err).not.toContain('\n');
  expect(got).toEqual([]);
  expect(spool.loadPeerSet()).toEqual(saved);
  expect(c.state().version).toBe('');
});

test('a well-formed answer from the same gateway is taken (the test gateway itself is sound)', async () => {
  answer = { ...saved, version: '8.abc', peers: [peer] };
  const got: PeerSet[] = [];
  const c = start(got);
  await waitFor(() => got.length === 1, 5000, 'the peer set');
  expect(got[0]!.peers[0]!.serial).toBe('ab12');
  expect(c.state().lastError).toBeNull();
  expect(spool.loadPeerSet()!.version).toBe('8.abc');
});
