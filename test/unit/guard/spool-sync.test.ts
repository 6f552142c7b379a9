/**
 * The guard's spool and sync client against the real gateway sync API
 * (in process, loopback, real mTLS): records are pushed and acknowledged,
 * survive the gateway going away, and land exactly once when it is back.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { RequestRecord } from '../../../src/core/request-record.js';
import { tokenHash } from '../../../src/core/api-token.js';
import { DEFAULT_OPTIONS } from '../../../src/core/model-options.js';
import { requestRepository } from '../../../src/db/requests.js';
import { tokenService } from '../../../src/gateway/token-service.js';
import { guardService, type IssuedGuard } from '../../../src/gateway/guard-service.js';
import { peerSetSource, type PeerSetSource } from '../../../src/gateway/peer-set.js';
import { changeSignal, createSyncApi, type ChangeSignal } from '../../../src/gateway/sync-api.js';
import type { PeerSet } from '../../../src/core/wire.js';
import type { DraftRecord } from '../../../src/guard/recorder.js';
import { openSpool, type Spool } from '../../../src/guard/spool.js';
import { startSyncClient, type SyncClient } from '../../../src/guard/sync-client.js';
import { issueCertificate } from '../../../src/pki/ca.js';
import { closeableServer } from '../../../src/system/sockets.js';
import { testCa, testCaStore } from '../../support/ca.js';
import { WHO, peerEnv, type PeerEnv } from '../../support/peer-env.js';
import { waitFor } from '../../support/wait.js';

const gatewayTls = (() => {
  let c: { cert: string; key: string; ca: string } | undefined;
  return () => {
    if (!c) {
      const issued = issueCertificate(testCa(), { role: 'gateway-server', commonName: 'wg-ollama gateway', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 86_400_000) });
      c = { cert: issued.certPem, key: issued.keyPem, ca: testCa().certPem };
    }
    return c;
  };
})();

let env: PeerEnv;
let dir: string;
let guard: IssuedGuard;
let source: PeerSetSource;
let changes: ChangeSignal;
let server: Server | null;
let closing: (() => Promise<void>) | null = null;
let port: number;
/** Every batch the gateway reported as new, in order (what metrics would count). */
let reported: RequestRecord[];
let spools: Spool[];
let clients: SyncClient[];
let warnings: string[];

/** Starts the sync API; on `port` when given (a restart), else on a free one. */
async function startGateway(onPort = 0, tap?: (req: IncomingMessage, res: ServerResponse) => void): Promise<void> {
  const s = createSyncApi({ db: env.db, tls: gatewayTls(), source, changes, onRecords: (_g, records) => reported.push(...records) });
  if (tap) s.prependListener('request', tap);
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(onPort, '127.0.0.1', () => resolve());
  });
  server = s;
  closing = closeableServer(s).close;
  port = (s.address() as AddressInfo).port;
}

async function stopGateway(): Promise<void> {
  if (!server) return;
  server = null;
  // Every socket, TLS handshakes in progress included: closeAllConnections() alone misses a
  // reconnect accepted just before, which then holds close() up for a whole long-poll (~25 s).
  await closing!();
}

function spoolAt(path: string): Spool {
  const s = openSpool(path);
  spools.push(s);
  return s;
}

function client(spool: Spool, onPeerSet: (set: PeerSet) => void = () => undefined, onStatus?: (s: { connected: boolean }) => void): SyncClient {
  const c = startSyncClient({
    gatewayUrl: `https://127.0.0.1:${port}/`,
    tls: { ca: testCa().certPem, cert: guard.client.certPem, key: guard.client.keyPem },
    spool,
    onPeerSet,
    log: { info: () => undefined, warn: (_o, m) => void warnings.push(String(m)), error: (_o, m) => void warnings.push(String(m)) },
    ...(onStatus ? { onStatus } : {}),
  });
  clients.push(c);
  return c;
}

function draft(n: number, o: Partial<DraftRecord> = {}): DraftRecord {
  return {
    at: Date.now(), peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
    model: 'llama3.2:latest', promptSha256: null, promptLength: n, promptText: null, status: 200, bytesIn: n, bytesOut: 10 * n,
    promptTokens: n, evalTokens: 2 * n, ttfbMs: 5, durationMs: 50, refusal: null, ...o,
  };
}

const stored = () => requestRepository(env.db).list({ since: 0, limit: 100_000 });
/** Each record is identified by promptLength (its number n in draft(n)). */
const storedNumbers = () => stored().map((r) => r.promptLength);

beforeEach(async () => {
  env = peerEnv();
  env.now = Date.now();
  env.svc.add({ name: 'alice' }, WHO);
  env.svc.add({ name: 'bob' }, WHO);
  guard = guardService({ db: env.db, config: env.config, ca: testCaStore() }).add({ name: 'gpu1', address: '127.0.0.1' }, WHO);
  source = peerSetSource(env.db, env.config);
  changes = changeSignal();
  dir = mkdtempSync(join(tmpdir(), 'wgo-spool-'));
  reported = [];
  spools = [];
  clients = [];
  warnings = [];
  server = null;
  await startGateway();
});

afterEach(async () => {
  for (const c of clients) await c.stop();
  await stopGateway();
  for (const s of spools) {
    try {
      s.close();
    } catch {
      /* closed by the test */
    }
  }
  env.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('spool', () => {
  test('sequence numbers grow and are never reused, even after everything was acknowledged and the spool reopened', () => {
    const path = join(dir, 'spool.db');
    const s = spoolAt(path);
    s.append([draft(1), draft(2)]);
    expect(s.pending(10).map((r) => [r.seq, r.promptLength])).toEqual([[1, 1], [2, 2]]);
    expect(s.pending(10, 1).map((r) => r.seq)).toEqual([2]);
    expect(s.pending(1).map((r) => r.seq)).toEqual([1]);
    s.ack(2);
    expect(s.count()).toBe(0);
    s.close();
    const again = spoolAt(path);
    again.append([draft(3)]);
    // seq 1 again would be dropped by the gateway as a duplicate of the first record.
    expect(again.pending(10).map((r) => [r.seq, r.promptLength])).toEqual([[3, 3]]);
  });
});

describe('sync client against the sync API', () => {
  test('spooled records are pushed, stored once, and acknowledged (the spool empties)', async () => {
    const spool = spoolAt(join(dir, 'spool.db'));
    const c = client(spool);
    spool.append([draft(1), draft(2), draft(3)]);
    c.kick();
    await waitFor(() => spool.count() === 0, 10000, 'the spool to empty');
    expect(stored().map((r) => [r.guard, r.guardSeq, r.promptLength])).toEqual([['gpu1', 1, 1], ['gpu1', 2, 2], ['gpu1', 3, 3]]);
    expect(spool.pending(10)).toEqual([]);
    const row = stored()[0]!;
    expect(row).toMatchObject({ ...draft(1), at: row.at });
    spool.append([draft(4)]);
    c.kick();
    await waitFor(() => spool.count() === 0 && stored().length === 4, 10000, 'the next record');
    expect(storedNumbers()).toEqual([1, 2, 3, 4]);
    expect(c.state()).toMatchObject({ connected: true, pending: 0, lastError: null });
  });

  test('the peer set arrives, is saved in the spool, and a new spool on the same file reloads it', async () => {
    const path = join(dir, 'spool.db');
    const spool = spoolAt(path);
    const sets: PeerSet[] = [];
    const c = client(spool, (s) => sets.push(s));
    await waitFor(() => sets.length === 1, 10000, 'the first peer set');
    expect(sets[0]!.peers.map((p) => p.name)).toEqual(['alice', 'bob']);
    expect(sets[0]!.version).toBe(source.version());
    expect(spool.loadPeerSet()).toEqual(sets[0]);

    // A change reaches the long-polling client without waiting out the poll.
    env.svc.disable('bob', WHO);
    const changedAt = Date.now();
    changes.notify();
    await waitFor(() => sets.length === 2, 2000, 'the changed peer set');
    expect(Date.now() - changedAt).toBeLessThan(1000);
    expect(sets[1]!.peers.map((p) => p.name)).toEqual(['alice']);
    await c.stop();
    spool.close();

    const firstId = spool.id();
    const reopened = spoolAt(path);
    expect(reopened.loadPeerSet()).toEqual(sets[1]);
    // The spool keeps its id across restarts; a new spool file gets a new one.
    expect(reopened.id()).toBe(firstId);
    expect(firstId).toMatch(/^[0-9a-f]{32}$/);
    const other = spoolAt(join(dir, 'other-spool.db'));
    expect(other.id()).not.toBe(firstId);
    other.close();
    // A guard restarted with it enforces it (main.ts) but asks for the whole set first:
    // today's token use and changes made while it was down come with the answer.
    const got: PeerSet[] = [];
    const again = client(reopened, (set) => void got.push(set));
    expect(again.state().version).toBe('');
    await waitFor(() => got.length === 1, 2000, 'the whole set again');
    expect(got[0]).toEqual(sets[1]);
    await again.stop();
  });

  test('the Ollama options a peer may set, and their bounds, reach the guard as the gateway stores them', async () => {
    env.svc.setPolicy('alice', { options: ['temperature', 'num_gpu'], optionLimits: { num_gpu: 20 }, maxTokensPerRequest: 512 }, WHO);
    const sets: PeerSet[] = [];
    client(spoolAt(join(dir, 'spool.db')), (set) => sets.push(set));
    await waitFor(() => sets.length === 1, 10000, 'the peer set');
    const alice = sets[0]!.peers.find((p) => p.name === 'alice')!;
    expect(alice.policy).toMatchObject({ options: ['temperature', 'num_gpu'], optionLimits: { num_gpu: 20 }, maxTokensPerRequest: 512 });
    expect(sets[0]!.peers.find((p) => p.name === 'bob')!.policy).toMatchObject({ options: [...DEFAULT_OPTIONS], optionLimits: {} });
  });

  test("a peer's token hash reaches the guard (apiTokens stays at the gateway); records pushed with auth keep it", async () => {
    env.svc.setPolicy('alice', { apiTokens: true }, WHO);
    const t = tokenService({ db: env.db, config: env.config }).issue('alice', WHO);
    const spool = spoolAt(join(dir, 'spool.db'));
    const sets: PeerSet[] = [];
    client(spool, (set) => sets.push(set));
    await waitFor(() => sets.length === 1, 10000, 'the peer set');
    expect(sets[0]!.peers.map((p) => [p.name, p.tokenSha256])).toEqual([['alice', tokenHash(t.token)], ['bob', null]]);
    for (const p of sets[0]!.peers) expect(p.policy).not.toHaveProperty('apiTokens');
    expect(spool.loadPeerSet()).toEqual(sets[0]);
    const serial = env.svc.show('alice').certificateSerial!;
    spool.append([draft(1, { certSerial: serial, auth: 'token' }), draft(2, { certSerial: serial, auth: 'certificate' }), draft(3, { peer: null, status: 401, refusal: 'token_invalid', auth: null })]);
    await waitFor(() => stored().length === 3, 10000, 'three records stored');
    expect(stored().map((r) => [r.promptLength, r.auth, r.peerId !== null])).toEqual([[1, 'token', true], [2, 'certificate', true], [3, null, false]]);
  });

  test('gateway down: records stay spooled; gateway back on the same port: every record arrives exactly once', async () => {
    const spool = spoolAt(join(dir, 'spool.db'));
    let connected = true;
    const c = client(spool, () => undefined, (s) => (connected = s.connected));
    spool.append([draft(1), draft(2)]);
    c.kick();
    await waitFor(() => spool.count() === 0, 10000, 'the first records');

    const samePort = port;
    await stopGateway();
    spool.append([draft(3), draft(4)]);
    c.kick();
    await waitFor(() => !connected, 10000, 'the client to notice the gateway is gone');
    spool.append([draft(5)]);
    await new Promise((r) => setTimeout(r, 300));
    expect(spool.count()).toBe(3);
    expect(storedNumbers()).toEqual([1, 2]);

    await startGateway(samePort);
    await waitFor(() => spool.count() === 0, 15_000, 'the spool to drain after the restart');
    expect(storedNumbers()).toEqual([1, 2, 3, 4, 5]);
    expect(stored().map((r) => r.guardSeq)).toEqual([1, 2, 3, 4, 5]);
    expect(reported.map((r) => r.promptLength)).toEqual([1, 2, 3, 4, 5]);
    expect(c.state().connected).toBe(true);
  }, 40_000);

  test('an acknowledgement lost on the way back: the retry stores nothing twice', async () => {
    await stopGateway();
    let cut = 0;
    // The first push is stored, then the connection dies before the answer leaves.
    await startGateway(port, (req, res) => {
      if (req.url === '/v1/records' && cut === 0) {
        cut++;
        res.end = (() => {
          req.socket.destroy();
          return res;
        }) as typeof res.end;
      }
    });
    const spool = spoolAt(join(dir, 'spool.db'));
    const c = client(spool);
    spool.append([draft(1), draft(2)]);
    c.kick();
    await waitFor(() => stored().length === 2, 10000, 'the first push to be stored');
    expect(spool.count()).toBe(2); // not acknowledged
    spool.append([draft(3)]); // the retry carries old and new records together
    await waitFor(() => spool.count() === 0, 15_000, 'the spool to drain');
    expect(cut).toBe(1);
    expect(storedNumbers()).toEqual([1, 2, 3]);
    expect(reported.map((r) => r.promptLength)).toEqual([1, 2, 3]);
  });
});

describe('a spool that cannot be written (issue 10, item 10)', () => {
  test('a new peer set is enforced all the same, and the failure is said loudly; it is saved once the spool works again', async () => {
    const spool = spoolAt(join(dir, 'spool.db'));
    let failing = true;
    const real = spool.savePeerSet.bind(spool);
    spool.savePeerSet = (set) => {
      if (failing) throw Object.assign(new Error('SQLITE_FULL: database or disk is full'), { code: 'SQLITE_FULL' });
      real(set);
    };
    const sets: PeerSet[] = [];
    client(spool, (s) => sets.push(s));
    await waitFor(() => sets.length === 1, 10000, 'the first peer set, spool failing');
    expect(sets[0]!.peers.map((p) => p.name).sort()).toEqual(['alice', 'bob']);
    await waitFor(() => warnings.some((w) => /cannot save the peer set/.test(w)), 10000, 'the failure to be reported');
    // A revocation while the disk is still full reaches the guard too: its policy does not freeze.
    env.svc.revoke('bob', WHO);
    changes.notify();
    await waitFor(() => sets.length >= 2 && !sets.at(-1)!.peers.some((p) => p.name === 'bob'), 10000, 'the set without bob');
    expect(spool.loadPeerSet()).toBeNull();
    failing = false;
    env.svc.revoke('alice', WHO);
    changes.notify();
    await waitFor(() => spool.loadPeerSet()?.peers.length === 0, 10000, 'the next set saved');
  });
});
