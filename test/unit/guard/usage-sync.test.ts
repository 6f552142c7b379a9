/**
 * Issue 10, item 1: how today's token use reaches a guard whose peer-set
 * version does not change. The real sync API (in process, real mTLS, SQLite)
 * and the real sync client and spool: every push is answered with the
 * budget's figures (saved in the spool with the acknowledgement), and while
 * there is nothing to push the client asks GET /v1/usage, so spending seen by
 * another guard arrives within seconds. Estimated charges travel in the
 * records and count at the gateway.
 */
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { requestRepository } from '../../../src/db/requests.js';
import { guardService, type IssuedGuard } from '../../../src/gateway/guard-service.js';
import { peerSetSource } from '../../../src/gateway/peer-set.js';
import { changeSignal, createSyncApi } from '../../../src/gateway/sync-api.js';
import type { Usage } from '../../../src/guard/budget.js';
import type { DraftRecord } from '../../../src/guard/recorder.js';
import { openSpool, type Spool } from '../../../src/guard/spool.js';
import { startSyncClient, type SyncClient } from '../../../src/guard/sync-client.js';
import { issueCertificate } from '../../../src/pki/ca.js';
import { closeableServer } from '../../../src/system/sockets.js';
import { testCa, testCaStore } from '../../support/ca.js';
import { WHO, peerEnv, type PeerEnv } from '../../support/peer-env.js';
import { waitFor } from '../../support/wait.js';

let env: PeerEnv;
let dir: string;
let guard: IssuedGuard;
let server: Server;
let closeServer: () => Promise<void>;
let spool: Spool;
let client: SyncClient | null;
let serial: string;

beforeEach(async () => {
  env = peerEnv();
  env.now = Date.now();
  serial = env.svc.add({ name: 'alice' }, WHO).certificate.serial;
  guard = guardService({ db: env.db, config: env.config, ca: testCaStore() }).add({ name: 'gpu1', address: '127.0.0.1' }, WHO);
  const issued = issueCertificate(testCa(), { role: 'gateway-server', commonName: 'wg-ollama gateway', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 86_400_000) });
  server = createSyncApi({ db: env.db, tls: { cert: issued.certPem, key: issued.keyPem, ca: testCa().certPem }, source: peerSetSource(env.db, env.config), changes: changeSignal() });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  closeServer = closeableServer(server).close;
  dir = mkdtempSync(join(tmpdir(), 'wgo-usage-'));
  spool = openSpool(join(dir, 'spool.db'));
  client = null;
});
afterEach(async () => {
  await client?.stop();
  await closeServer();
  spool.close();
  env.close();
  rmSync(dir, { recursive: true, force: true });
});

function start(onUsage: (u: Usage) => void): SyncClient {
  client = startSyncClient({
    gatewayUrl: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tls: { ca: testCa().certPem, cert: guard.client.certPem, key: guard.client.keyPem },
    spool,
    onPeerSet: () => undefined,
    onUsage,
    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
  });
  return client;
}

const draft = (o: Partial<DraftRecord>): DraftRecord => ({
  at: Date.now(), peer: 'alice', certSerial: serial, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
  model: 'llama3.2:latest', promptSha256: null, promptLength: 4, promptText: null, status: 200, bytesIn: 4, bytesOut: 40,
  promptTokens: null, evalTokens: null, ttfbMs: 5, durationMs: 50, refusal: null, ...o,
});

describe('the budget\'s figures over the sync API', () => {
  test('a push is answered with them (estimates counted), saved with the acknowledgement; idle, GET /v1/usage brings other guards\' spending', async () => {
    const got: Usage[] = [];
    const c = start((u) => got.push(u));
    // Idle at start: the figures come at once.
    await waitFor(() => got.length >= 1, 8000, 'the first figures');
    expect(got[0]).toMatchObject({ tokensToday: { alice: 0 }, upTo: 0 });

    const [a, b] = spool.append([draft({ promptTokens: 3, evalTokens: 7 }), draft({ estimatedTokens: 25, refusal: 'client_aborted' })]);
    c.kick();
    await waitFor(() => got.some((u) => u.upTo === b!.seq), 8000, 'the push answer');
    expect(got.find((u) => u.upTo === b!.seq)!.tokensToday).toEqual({ alice: 35 });
    expect(a!.seq).toBeLessThan(b!.seq);
    expect(spool.count()).toBe(0);
    expect(spool.loadUsage()).toMatchObject({ tokensToday: { alice: 35 }, upTo: b!.seq });
    expect(requestRepository(env.db).list({ since: 0 }).map((r) => r.estimatedTokens)).toEqual([null, 25]);

    // Another guard's records: no peer-set version changes, yet the figures arrive without a push from this guard.
    const other = { ...draft({ promptTokens: 100, evalTokens: 0 }), seq: 1 };
    requestRepository(env.db).insertBatch('gpu2', [other], 'bbbbbbbbbbbbbbbb');
    const t0 = Date.now();
    await waitFor(() => got.at(-1)!.tokensToday.alice === 135, 5000, 'the other guard\'s spending');
    expect(Date.now() - t0).toBeLessThan(3500);
    expect(got.at(-1)!.upTo).toBe(b!.seq);
  });
});
