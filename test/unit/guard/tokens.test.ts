/**
 * Peer-bound API tokens at the real guard over real TLS on loopback: alice
 * (127.0.0.1) has a token, bob (127.0.0.2) has none. Every refusal is checked
 * for its status, its JSON body, its record, and that the simulator saw nothing.
 */
import { once } from 'node:events';
import tls from 'node:tls';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { generateApiToken, tokenHash } from '../../../src/core/api-token.js';
import type { PeerSet } from '../../../src/core/wire.js';
import { TOKEN_FAILURES_PER_MINUTE } from '../../../src/guard/tokens.js';
import { createCa, issueCertificate } from '../../../src/pki/ca.js';
import { DAY_MS, errorOf, parseRaw, readUntilClose, startEnv, type GuardEnv, type Reply, type Who } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

let env: GuardEnv;
const TOKEN = generateApiToken();
const OTHER = generateApiToken();

/** The env's set with tokens: alice's by default; `tokens` maps names to tokens (null: none). */
function withTokens(tokens: Record<string, string | null> = { alice: TOKEN }, base: PeerSet = env.peerSet()): PeerSet {
  return { ...base, peers: base.peers.map((p) => ({ ...p, tokenSha256: tokens[p.name] ? tokenHash(tokens[p.name]!) : null })) };
}

/** A guard of its own for each describe block: failed attempts of one block must not limit the next. */
function useEnv(): void {
  beforeAll(async () => {
    env = await startEnv();
  });
  afterAll(async () => {
    await env?.close();
  });
  beforeEach(() => env.reset({ peers: withTokens() }));
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const send = (who: Who, headers: Record<string, string>, localAddress?: string): Promise<Reply> =>
  env.request(who, { path: '/api/version', headers, ...(localAddress ? { localAddress } : {}) });
const failures = async (reason: string): Promise<number> => {
  const m = new RegExp(`wgo_guard_token_failures_total\\{reason="${reason}"\\} (\\d+)`).exec(await env.registry.getSingleMetricAsString('wgo_guard_token_failures_total'));
  return m ? Number(m[1]) : 0;
};

async function expectRefused(r: Reply, status: number, error: string, reason: string) {
  expect(r.status).toBe(status);
  expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
  expect(errorOf(r)).toBe(error);
  await waitFor(() => env.records.length === 1, 2000, 'one record');
  expect(env.records[0]).toMatchObject({ status, refusal: reason, peer: null });
  expect(env.sim.requests).toHaveLength(0);
  return env.records[0]!;
}

describe('a peer-bound token', () => {
  useEnv();

  test("works without a client certificate from its peer's address; recorded as auth token; Authorization never reaches Ollama", async () => {
    const r = await send(null, bearer(TOKEN));
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ version: '0.12.6' });
    expect(env.sim.requests).toHaveLength(1);
    expect(Object.keys(env.sim.requests[0]!.headers)).not.toContain('authorization');
    await waitFor(() => env.records.length === 1, 2000, 'one record');
    // The serial is the certificate the token is bound to: the gateway finds the peer (and its budget) by it.
    expect(env.records[0]).toMatchObject({ status: 200, peer: 'alice', auth: 'token', certSerial: env.certs.get('alice')!.serial, source: '127.0.0.1', refusal: null });
    expect(JSON.stringify(env.records)).not.toContain(TOKEN);
  });

  test("is refused from another peer's address with the same 401 as an unknown token (a leaked token tells nothing), counted as wrong_source", async () => {
    const before = await failures('wrong_source');
    const rec = await expectRefused(await send(null, bearer(TOKEN), '127.0.0.2'), 401, 'invalid API token', 'token_wrong_source');
    expect(rec).toMatchObject({ source: '127.0.0.2', auth: 'token', certSerial: env.certs.get('alice')!.serial });
    expect(await failures('wrong_source')).toBe(before + 1);
  });

  test.each([
    ['unknown', () => withTokens({ alice: TOKEN }), OTHER],
    ['revoked (no longer in the set)', () => withTokens({}), TOKEN],
    ["the peer's policy does not allow tokens (the gateway sends no hash)", () => withTokens({ alice: null }), TOKEN],
    ['replaced by a new one', () => withTokens({ alice: OTHER }), TOKEN],
    ['its peer left the set (disabled, revoked)', () => withTokens({ alice: TOKEN }, env.peerSet({ without: ['alice'] })), TOKEN],
  ])('%s → 401, the same answer for all', async (_what, set, token) => {
    env.guard.setPeers(set());
    const before = await failures('unknown');
    const rec = await expectRefused(await send(null, bearer(token)), 401, 'invalid API token', 'token_invalid');
    expect(rec).toMatchObject({ auth: null, certSerial: null, source: '127.0.0.1' });
    expect(await failures('unknown')).toBe(before + 1);
  });

});

// Its own guard: each failure above counts against 127.0.0.1, and ten in a minute mean 429.
describe('a peer-bound token, refused for its certificate, its peer or its form', () => {
  useEnv();

  test('rotated: the set names a new serial and no token → 401', async () => {
    const rotated = issueCertificate(env.ca, { role: 'peer', commonName: 'alice', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + DAY_MS) });
    const set = env.peerSet();
    set.peers = set.peers.map((p) => (p.name === 'alice' ? { ...p, serial: rotated.serial, tokenSha256: null } : p));
    env.guard.setPeers(set);
    await expectRefused(await send(null, bearer(TOKEN)), 401, 'invalid API token', 'token_invalid');
  });

  test('an expired peer → 401', async () => {
    const set = withTokens();
    set.peers = set.peers.map((p) => (p.name === 'alice' ? { ...p, expiresAt: Date.now() - 1 } : p));
    env.guard.setPeers(set);
    await expectRefused(await send(null, bearer(TOKEN)), 401, 'peer has expired', 'auth_peer_expired');
  });

  test.each([
    ['another scheme', `Basic ${Buffer.from('alice:pw').toString('base64')}`],
    ['not one of our tokens', 'Bearer sk-not-a-wgo-token'],
    ['a token with something after it', `Bearer ${TOKEN} x`],
  ])('a malformed Authorization header (%s) → 401, counted as malformed', async (_what, value) => {
    const before = await failures('malformed');
    await expectRefused(await send(null, { authorization: value }), 401, 'invalid API token', 'token_invalid');
    expect(await failures('malformed')).toBe(before + 1);
  });

  test('no certificate and no Authorization header is still "client certificate required"', async () => {
    await expectRefused(await send(null, {}), 401, 'client certificate required', 'auth_no_certificate');
  });
});

describe('a certificate always wins', () => {
  useEnv();

  test("bob's certificate with alice's token, from bob's address: served as bob, by certificate", async () => {
    const r = await send('bob', bearer(TOKEN), '127.0.0.2');
    expect(r.status).toBe(200);
    await waitFor(() => env.records.length === 1, 2000, 'one record');
    expect(env.records[0]).toMatchObject({ peer: 'bob', auth: 'certificate', certSerial: env.certs.get('bob')!.serial });
    expect(Object.keys(env.sim.requests[0]!.headers)).not.toContain('authorization');
  });

  test("bob's certificate from alice's address with alice's valid token: refused for the certificate, no fallback to the token", async () => {
    const rec = await expectRefused(await send('bob', bearer(TOKEN)), 403, 'client certificate belongs to 127.0.0.2, not to 127.0.0.1', 'auth_wrong_source');
    expect(rec.auth).toBe('certificate');
  });

  test('a certificate from another CA with a valid token: refused as untrusted', async () => {
    const other = createCa({ commonName: 'wg-ollama test CA' });
    const stranger = issueCertificate(other, { role: 'peer', commonName: 'alice', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + DAY_MS) });
    const rec = await expectRefused(await send({ cert: stranger.certPem, key: stranger.keyPem }, bearer(TOKEN)), 401, 'client certificate is not from this wg-ollama CA', 'auth_untrusted');
    expect(rec.auth).toBeNull();
  });
});

describe('failed attempts are limited per source address', () => {
  useEnv();

  test(`after ${TOKEN_FAILURES_PER_MINUTE} failures in a minute, 429 with Retry-After — even for a good token from there; other addresses are unaffected`, async () => {
    const src = '127.0.0.3';
    for (let i = 0; i < TOKEN_FAILURES_PER_MINUTE; i++) expect((await send(null, bearer(generateApiToken()), src)).status).toBe(401);
    const before = await failures('rate_limited');
    env.records.length = 0;
    const r = await send(null, bearer(generateApiToken()), src);
    expect(r.status).toBe(429);
    expect(errorOf(r)).toBe('too many failed API token attempts');
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(50);
    expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(60);
    await waitFor(() => env.records.length === 1, 2000, 'one record');
    expect(env.records[0]).toMatchObject({ status: 429, refusal: 'token_rate_limited', source: src });
    expect(await failures('rate_limited')).toBe(before + 1);
    // Still refused with the token of a peer at that address, had there been one: the address is limited, not the token.
    env.guard.setPeers(withTokens({ alice: TOKEN }));
    expect((await send(null, bearer(TOKEN), src)).status).toBe(429);
    expect((await send(null, bearer(TOKEN))).status).toBe(200);
    expect(env.sim.requests).toHaveLength(1);
  });
});

describe('token connections are cut', () => {
  useEnv();

  async function keepAlive(): Promise<import('node:tls').TLSSocket> {
    const s = await env.rawTls(null);
    s.setEncoding('utf8');
    let got = '';
    s.on('data', (c: string) => (got += c));
    s.write(`GET /api/version HTTP/1.1\r\nHost: guard\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
    await waitFor(() => got.includes('"version"'), 2000, 'first answer');
    expect(parseRaw(got).status).toBe(200);
    expect(env.guard.connections()).toBe(1);
    s.removeAllListeners('data');
    return s;
  }

  test.each([
    ['the token is revoked', () => withTokens({})],
    ['the token is replaced', () => withTokens({ alice: OTHER })],
    ['the peer leaves the set', () => withTokens({ alice: TOKEN }, env.peerSet({ without: ['alice'] }))],
  ])('an idle keep-alive connection is closed at once when %s', async (_what, set) => {
    const s = await keepAlive();
    const closed = readUntilClose(s, 1000);
    env.guard.setPeers(set());
    expect((await closed).closed).toBe(true);
    await waitFor(() => env.guard.connections() === 0, 500, 'the guard forgets the connection');
  });

  test('a policy change that keeps the token keeps the connection', async () => {
    const s = await keepAlive();
    const closed = readUntilClose(s, 300);
    env.guard.setPeers(withTokens({ alice: TOKEN }, env.peerSet({ policies: { alice: { maxStreams: 1 } } })));
    expect((await closed).closed).toBe(false);
    s.destroy();
  });

  test('a stream in flight is cut when the token is revoked, and recorded so', async () => {
    const s = await env.rawTls(null);
    s.setEncoding('utf8');
    let got = '';
    s.on('data', (c: string) => (got += c));
    const body = JSON.stringify({ model: 'llama3.2', prompt: 'long', options: { num_predict: 5000 } });
    s.write(`POST /api/generate HTTP/1.1\r\nHost: guard\r\nAuthorization: Bearer ${TOKEN}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    await waitFor(() => (got.match(/"response"/g) ?? []).length >= 3, 3000, 'the stream to start');
    const closed = readUntilClose(s, 1000);
    env.guard.setPeers(withTokens({}));
    const c = await closed;
    expect(c.closed).toBe(true);
    expect(got).not.toContain('"done":true');
    await waitFor(() => env.records.length === 1, 2000, 'the record');
    expect(env.records[0]).toMatchObject({ peer: 'alice', auth: 'token', refusal: 'token_revoked', status: 200 });
  });
});

describe('TLS 1.3 session resumption without a client certificate', () => {
  useEnv();

  /** A first connection without a certificate, then a second that resumes its session. */
  async function resumed(): Promise<tls.TLSSocket> {
    const first = tls.connect({ host: '127.0.0.1', port: env.port, ...env.tlsFor(null), minVersion: 'TLSv1.3' });
    const session = new Promise<Buffer>((resolve) => first.once('session', resolve));
    first.on('error', () => undefined);
    await once(first, 'secureConnect');
    // The server sends its ticket after the handshake; a request makes sure it has arrived.
    first.write('GET /api/version HTTP/1.1\r\nHost: guard\r\nConnection: close\r\n\r\n');
    const ticket = await session;
    first.destroy();
    const s = tls.connect({ host: '127.0.0.1', port: env.port, ...env.tlsFor(null), minVersion: 'TLSv1.3', session: ticket });
    s.on('error', () => undefined);
    await once(s, 'secureConnect');
    expect(s.isSessionReused()).toBe(true);
    return s;
  }

  test('(Node calls such a socket authorized) is "no certificate": 401 without a token, served with one — and the guard keeps running', async () => {
    const s = await resumed();
    const answer = readUntilClose(s, 2000);
    s.write('GET /api/version HTTP/1.1\r\nHost: guard\r\n\r\n');
    const r = await answer;
    expect(parseRaw(r.data).status).toBe(401);
    expect(errorOf(parseRaw(r.data))).toBe('client certificate required');
    const t = await resumed();
    const served = readUntilClose(t, 2000);
    t.write(`GET /api/version HTTP/1.1\r\nHost: guard\r\nAuthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`);
    expect(parseRaw((await served).data).status).toBe(200);
    expect((await send('alice', {})).status).toBe(200);
  });
});
