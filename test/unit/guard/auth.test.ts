/**
 * Layer 3: who may talk to the guard. Every refusal is checked for its exact
 * status and JSON body, its record, and that the simulator never saw it.
 */
import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createCa, issueCertificate } from '../../../src/pki/ca.js';
import { DAY_MS, errorOf, parseRaw, readUntilClose, startEnv, type GuardEnv } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

let env: GuardEnv;

beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => env.reset({ peers: env.peerSet() }));

async function expectRefused(who: Parameters<GuardEnv['request']>[0], status: number, error: string, reason: string, localAddress?: string) {
  const r = await env.request(who, { path: '/api/version', ...(localAddress ? { localAddress } : {}) });
  expect(r.status).toBe(status);
  expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
  expect(errorOf(r)).toBe(error);
  await waitFor(() => env.records.length === 1, 2000, 'one record');
  expect(env.records[0]).toMatchObject({ status, refusal: reason, source: localAddress ?? '127.0.0.1', method: 'GET', path: '/api/version', bytesOut: Buffer.byteLength(r.text) });
  expect(env.sim.requests).toHaveLength(0);
  return env.records[0]!;
}

describe('client certificates', () => {
  test('a peer with its own certificate from its own address is served (the control for every refusal below)', async () => {
    const r = await env.request('alice', { path: '/api/version' });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ version: '0.12.6' });
    expect(env.sim.requests.map((q) => q.path)).toEqual(['/api/version']);
    const b = await env.request('bob', { path: '/api/version', localAddress: '127.0.0.2' });
    expect(b.status).toBe(200);
    expect(env.sim.requests).toHaveLength(2);
  });

  test('no client certificate → 401', async () => {
    const rec = await expectRefused(null, 401, 'client certificate required', 'auth_no_certificate');
    expect(rec).toMatchObject({ peer: null, certSerial: null });
  });

  test('a certificate from another CA (same names, same address) → 401', async () => {
    const other = createCa({ commonName: 'wg-ollama test CA' });
    const stranger = issueCertificate(other, { role: 'peer', commonName: 'alice', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + DAY_MS) });
    const rec = await expectRefused({ cert: stranger.certPem, key: stranger.keyPem }, 401, 'client certificate is not from this wg-ollama CA', 'auth_untrusted');
    expect(rec.certSerial).toBeNull();
  });

  test('an expired certificate of our CA → 401', async () => {
    const old = issueCertificate(env.ca, {
      role: 'peer', commonName: 'alice', ipAddresses: ['127.0.0.1'], now: new Date(Date.now() - 3 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS),
    });
    await expectRefused({ cert: old.certPem, key: old.keyPem }, 401, 'client certificate has expired', 'auth_expired');
  });

  test('a good certificate of our CA whose serial is in no active peer (revoked, rotated away) → 401', async () => {
    const rotated = issueCertificate(env.ca, { role: 'peer', commonName: 'alice', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + DAY_MS) });
    const rec = await expectRefused({ cert: rotated.certPem, key: rotated.keyPem }, 401, 'client certificate is revoked or belongs to no active peer', 'auth_revoked');
    expect(rec.certSerial).toBe(rotated.serial);
    expect(rec.peer).toBeNull();
  });

  test("a peer revoked while its keep-alive connection is open: the connection is closed at once, new ones get 401", async () => {
    const s = await env.rawTls('alice');
    s.setEncoding('utf8');
    let got = '';
    s.on('data', (c: string) => (got += c));
    s.write('GET /api/version HTTP/1.1\r\nHost: guard\r\n\r\n');
    await waitFor(() => got.includes('"version"'), 2000, 'first answer');
    expect(parseRaw(got).status).toBe(200);
    expect(parseRaw(got).headers.connection).toBe('keep-alive');
    expect(env.guard.connections()).toBe(1);

    const closed = readUntilClose(s, 1000);
    const t0 = Date.now();
    env.guard.setPeers(env.peerSet({ without: ['alice'] }));
    const c = await closed;
    expect(c.closed).toBe(true);
    expect(Date.now() - t0).toBeLessThan(1000);
    await waitFor(() => env.guard.connections() === 0, 500, 'the guard forgets the connection');

    env.sim.clear();
    env.records.length = 0;
    await expectRefused('alice', 401, 'client certificate is revoked or belongs to no active peer', 'auth_revoked');
    // bob is untouched
    expect((await env.request('bob', { path: '/api/version', localAddress: '127.0.0.2' })).status).toBe(200);
  });

  test('an idle keep-alive connection of a peer left out of the next set is closed, one of a peer still in it is not', async () => {
    const a = await env.rawTls('alice');
    const b = await env.rawTls('bob', '127.0.0.2');
    const aClosed = readUntilClose(a, 1000);
    const bClosed = readUntilClose(b, 300);
    env.guard.setPeers(env.peerSet({ without: ['alice'], version: 'v2' }));
    expect((await aClosed).closed).toBe(true);
    expect((await bClosed).closed).toBe(false);
    b.destroy();
  });

  test("peer A's certificate from peer B's address → 403, and B's from A's", async () => {
    const rec = await expectRefused('alice', 403, 'client certificate belongs to 127.0.0.1, not to 127.0.0.2', 'auth_wrong_source', '127.0.0.2');
    expect(rec).toMatchObject({ peer: null, certSerial: env.certs.get('alice')!.serial });
    env.records.length = 0;
    await expectRefused('bob', 403, 'client certificate belongs to 127.0.0.2, not to 127.0.0.1', 'auth_wrong_source');
  });

  test.each([
    ['connected before the peer set naming the expiry', true],
    ['connected after it', false],
  ])('a peer whose expiry passes while it is connected (%s) is cut, then refused', async (_, connectFirst) => {
    const withExpiry = (): void => {
      const set = env.peerSet();
      set.peers = set.peers.map((p) => (p.name === 'alice' ? { ...p, expiresAt: Date.now() + 400 } : p));
      env.guard.setPeers(set);
    };
    if (!connectFirst) withExpiry();
    const s = await env.rawTls('alice');
    // Under TLS 1.3 the client is connected before the server has read its certificate.
    await waitFor(() => env.guard.connections() === 1, 1000, 'the guard sees the connection');
    if (connectFirst) withExpiry();
    const c = await readUntilClose(s, 2000);
    expect(c.closed).toBe(true);
    expect(c.afterMs).toBeGreaterThanOrEqual(150);
    await expectRefused('alice', 401, 'peer has expired', 'auth_peer_expired');
  });

  test('plain HTTP on the TLS port: the connection is dropped and recorded as a failed handshake', async () => {
    const s = net.connect({ host: '127.0.0.1', port: env.port });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.write('POST /api/pull HTTP/1.1\r\nHost: guard\r\nContent-Length: 2\r\n\r\n{}');
    const closed = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 2000);
      s.once('close', () => (clearTimeout(t), resolve(true)));
    });
    expect(closed).toBe(true);
    await waitFor(() => env.records.length >= 1, 1000, 'the record');
    await new Promise((r) => setTimeout(r, 20));
    expect(env.records).toHaveLength(1);
    expect(env.records[0]).toMatchObject({ status: 0, refusal: 'tls_handshake_failed', source: '127.0.0.1', method: null, path: null });
    expect(env.sim.requests).toHaveLength(0);
    expect(await env.registry.getSingleMetricAsString('wgo_guard_tls_auth_failures_total')).toMatch(/reason="tls_handshake"} [1-9]/);
  });
});
