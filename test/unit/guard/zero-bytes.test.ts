/**
 * Every refusal class the guard has, one request each, through the real
 * guard: each is answered with its status and recorded with its reason, and
 * Ollama never hears of it — not a request, not a TCP connection, so not a
 * byte. The last test is the control: a served request is seen by the same
 * counters.
 */
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Registry } from 'prom-client';
import { createAuditTrail } from '../../../src/guard/audit.js';
import { guardMetrics } from '../../../src/guard/metrics.js';
import { createCa, issueCertificate } from '../../../src/pki/ca.js';
import { DAY_MS, parseRaw, readUntilClose, silentLog, startEnv, type GuardEnv, type RequestOptions, type Who } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

let env: GuardEnv;
/** TCP connections Ollama accepted: with none, no byte of a request reached it. */
let upstreamConnections = 0;
const FAST = { requestsPerMinute: 100_000, burst: 1000 };

beforeAll(async () => {
  env = await startEnv({
    limits: { maxBodyBytes: 1024, maxHeaderBytes: 2048 },
    peers: [
      { name: 'alice', address: '127.0.0.1', policy: { ...FAST, models: ['llama3.2'] } },
      { name: 'bob', address: '127.0.0.2', policy: { requestsPerMinute: 1, burst: 1 } },
      { name: 'carol', address: '127.0.0.3', policy: { ...FAST, tokensPerDay: 10 } },
      { name: 'dave', address: '127.0.0.4', policy: { ...FAST, maxStreams: 1 } },
      // may create and copy, into her own namespace only
      { name: 'erin', address: '127.0.0.5', policy: { ...FAST, endpoints: ['generate', 'create', 'copy'], models: ['llama3.2', 'erin/*'], writeModels: ['erin/*'] } },
    ],
  });
  env.sim.server.on('connection', (_s: Socket) => upstreamConnections++);
  // carol has used her day's tokens, by the gateway's count
  env.guard.setPeers({ ...env.peerSet(), tokensToday: { carol: 10 } });
});
afterAll(async () => {
  await env?.close();
});

const gen = { model: 'llama3.2', prompt: 'hi' };
const at = (address: string) => ({ localAddress: address });

async function send(who: Who, o: RequestOptions): Promise<number> {
  return (await env.request(who, o)).status;
}

/** A raw request (for what Node's client will not send); the status of the answer. */
async function sendRaw(who: Who, raw: string): Promise<number> {
  const s = await env.rawTls(who);
  s.write(raw);
  const res = await readUntilClose(s, 2000);
  s.destroy();
  return parseRaw(res.data).status;
}

const CASES: [reason: string, status: number, send: () => Promise<number>][] = [
  ['auth_no_certificate', 401, () => send(null, { path: '/api/generate', body: gen })],
  ['auth_untrusted', 401, () => {
    const other = issueCertificate(createCa({ commonName: 'wg-ollama test CA' }), { role: 'peer', commonName: 'alice', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + DAY_MS) });
    return send({ cert: other.certPem, key: other.keyPem }, { path: '/api/generate', body: gen });
  }],
  ['auth_expired', 401, () => {
    const old = issueCertificate(env.ca, { role: 'peer', commonName: 'alice', ipAddresses: ['127.0.0.1'], now: new Date(Date.now() - 3 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) });
    return send({ cert: old.certPem, key: old.keyPem }, { path: '/api/generate', body: gen });
  }],
  ['auth_revoked', 401, () => {
    const rotated = issueCertificate(env.ca, { role: 'peer', commonName: 'alice', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + DAY_MS) });
    return send({ cert: rotated.certPem, key: rotated.keyPem }, { path: '/api/generate', body: gen });
  }],
  ['auth_wrong_source', 403, () => send('alice', { path: '/api/generate', body: gen, ...at('127.0.0.2') })],
  ['cross_origin', 403, () => send('alice', { path: '/api/generate', body: gen, headers: { origin: 'https://evil.example' } })],
  ['path_not_canonical', 400, () => send('alice', { path: '/api/../api/generate', body: gen })],
  ['unknown_endpoint', 404, () => send('alice', { path: '/api/nope', body: gen })],
  ['method_not_allowed', 405, () => send('alice', { method: 'PUT', path: '/api/generate', body: gen })],
  ['endpoint_denied', 403, () => send('alice', { path: '/api/pull', body: { model: 'llama3.2' } })],
  ['bad_framing', 400, () => sendRaw('alice', 'POST /api/generate HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n')],
  ['ambiguous_length', 400, () => sendRaw('alice', 'POST /api/generate HTTP/1.1\r\nHost: guard\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n')],
  ['headers_too_large', 431, () => send('alice', { path: '/api/generate', body: gen, headers: { 'x-pad': 'y'.repeat(3000) } })],
  ['body_too_large', 413, () => send('alice', { path: '/api/generate', body: { ...gen, prompt: 'x'.repeat(2000) } })],
  ['unsupported_media_type', 415, () => send('alice', { path: '/api/generate', body: gen, headers: { 'content-type': 'text/html' } })],
  ['unexpected_body', 400, () => send('alice', { method: 'GET', path: '/api/tags', body: 'x', headers: { 'content-type': 'text/plain' } })],
  ['bad_json', 400, () => send('alice', { path: '/api/generate', body: '{"model":' })],
  ['model_missing', 400, () => send('alice', { path: '/api/generate', body: { prompt: 'hi' } })],
  ['bad_model', 400, () => send('alice', { path: '/api/generate', body: { model: 7, prompt: 'hi' } })],
  ['model_denied', 403, () => send('alice', { path: '/api/generate', body: { model: 'qwen2.5:0.5b', prompt: 'hi' } })],
  // dave has no models allowlist: a name is still read with Ollama's grammar first
  ['bad_model', 400, () => send('dave', { path: '/api/generate', body: { model: '../../x', prompt: 'hi' }, ...at('127.0.0.4') })],
  ['bad_model', 400, () => send('dave', { path: '/api/generate', body: { model: `x@sha256:${'a'.repeat(64)}`, prompt: 'hi' }, ...at('127.0.0.4') })],
  ['bad_model', 400, () => send('dave', { path: '/v1/models/x@sha256:abc', ...at('127.0.0.4') })],
  ['write_denied', 403, () => send('erin', { path: '/api/copy', body: { source: 'erin/mine', destination: 'llama3.2' }, ...at('127.0.0.5') })],
  ['write_denied', 403, () => send('erin', { path: '/api/create', body: { model: 'llama3.2', from: 'erin/mine' }, ...at('127.0.0.5') })],
  ['digest_denied', 403, () => send('erin', { path: '/api/create', body: { model: 'erin/x', files: { 'model.gguf': `sha256:${'a'.repeat(64)}` } }, ...at('127.0.0.5') })],
  ['ambiguous_field', 400, () => send('alice', { path: '/api/generate', body: '{"model":"llama3.2","MODEL":"qwen2.5:0.5b","prompt":"hi"}' })],
  ['option_denied', 403, () => send('alice', { path: '/api/generate', body: { ...gen, options: { num_gpu: 999 } } })],
  ['unknown_option', 400, () => send('alice', { path: '/api/generate', body: { ...gen, options: { num_gpus: 1 } } })],
  ['bad_option', 400, () => send('alice', { path: '/api/generate', body: { ...gen, options: { num_ctx: '131072' } } })],
  ['upgrade_refused', 400, () => send('alice', { path: '/api/generate', body: gen, headers: { connection: 'Upgrade', upgrade: 'websocket' } })],
  ['upgrade_refused', 400, () => send('alice', { path: '/api/version', headers: { upgrade: 'h2c' } })],
  ['connection_option_refused', 400, () => send('alice', { path: '/api/generate', body: gen, headers: { connection: 'keep-alive, x-forwarded-for' } })],
  ['rate_limited', 429, async () => {
    // bob's one request of the minute is spent on a refusal that comes after the rate check
    expect(await send('bob', { path: '/api/generate', body: '{', ...at('127.0.0.2') })).toBe(400);
    return send('bob', { path: '/api/generate', body: gen, ...at('127.0.0.2') });
  }],
  ['too_many_streams', 429, async () => {
    // dave's one stream slot is held by a request whose body is still arriving (it never reaches Ollama either)
    const s = await env.rawTls('dave', '127.0.0.4');
    s.write('POST /api/generate HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":');
    await new Promise((r) => setTimeout(r, 100));
    try {
      return await send('dave', { path: '/api/generate', body: gen, ...at('127.0.0.4') });
    } finally {
      s.destroy();
    }
  }],
  ['token_budget', 429, () => send('carol', { path: '/api/generate', body: gen, ...at('127.0.0.3') })],
];

describe('zero bytes to Ollama', () => {
  test.each(CASES)('%s → %d, recorded, and Ollama sees nothing', async (reason, status, go) => {
    env.records.length = 0;
    expect(await go()).toBe(status);
    await waitFor(() => env.records.some((r) => r.refusal === reason), 2000, `a ${reason} record`);
    expect(env.records.find((r) => r.refusal === reason)).toMatchObject({ status });
    expect(env.sim.requests).toEqual([]);
    expect(upstreamConnections).toBe(0);
  });

  test('the control: a served request is seen by the same counters', async () => {
    expect(await send('alice', { path: '/api/generate', body: { ...gen, stream: false } })).toBe(200);
    expect(env.sim.requests.map((q) => q.path)).toEqual(['/api/generate']);
    expect(upstreamConnections).toBe(1);
  });
});

describe('hop-by-hop headers', () => {
  test('Connection, Keep-Alive, TE and the like never reach Ollama: only content-type, accept and user-agent are passed on', async () => {
    env.sim.clear();
    const headers = { connection: 'keep-alive', 'keep-alive': 'timeout=1', te: 'trailers', 'proxy-connection': 'keep-alive', 'x-forwarded-for': '10.0.0.9', accept: 'application/json', 'user-agent': 'test/1' };
    expect(await send('alice', { path: '/api/generate', body: { ...gen, stream: false }, headers })).toBe(200);
    const seen = env.sim.requests[0]!.headers as Record<string, string>;
    expect(Object.keys(seen).sort()).toEqual(['accept', 'connection', 'content-length', 'content-type', 'host', 'user-agent']);
    // undici's own pooled connection, not the client's header
    expect(seen.connection).toBe('keep-alive');
    expect(seen.host).toBe(`127.0.0.1:${env.simPort}`);
  });
});

describe('zero bytes to Ollama: refusals for the upstream pool', () => {
  /** A pool of 4, at most 2 per peer, filled with slow streams (10 tokens/s) that stay in flight: alice 2, bob 1, carol 1. */
  let pool: GuardEnv;
  let connections = 0;
  const held: Socket[] = [];
  const PEERS = { alice: '127.0.0.1', bob: '127.0.0.2', carol: '127.0.0.3', dave: '127.0.0.4' } as const;
  beforeAll(async () => {
    pool = await startEnv({
      sim: { tokenRate: 10 },
      limits: { maxUpstreamRequests: 4, maxUpstreamPerPeer: 2 },
      peers: Object.entries(PEERS).map(([name, address]) => ({ name, address, policy: { ...FAST, maxStreams: 10 } })),
    });
    pool.sim.server.on('connection', () => connections++);
    const long = JSON.stringify({ ...gen, options: { num_predict: 1000 } });
    for (const who of ['alice', 'alice', 'bob', 'carol'] as const) {
      const s = await pool.rawTls(who, PEERS[who]);
      s.on('error', () => undefined);
      s.on('data', () => undefined);
      s.write(`POST /api/generate HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\nContent-Length: ${long.length}\r\n\r\n${long}`);
      held.push(s);
      await waitFor(() => pool.sim.requests.length === held.length, 2000, 'the stream at Ollama');
    }
  });
  afterAll(async () => {
    for (const s of held) s.destroy();
    await pool?.close();
  });

  test.each([
    ['too_many_in_flight', 429, 'alice'],
    // the pool is full and 3 peers are active: bob, with one in flight, has his share (4 / 3 → 1)
    ['fair_share', 429, 'bob'],
    // dave has nothing in flight: below his share, but there is no slot left
    ['upstream_busy', 503, 'dave'],
  ] as const)('%s → %d (%s), recorded, and Ollama sees nothing', async (reason, status, who) => {
    pool.records.length = 0;
    const [requests, conns] = [pool.sim.requests.length, connections];
    const r = await pool.request(who, { path: '/api/show', body: { model: 'llama3.2' }, localAddress: PEERS[who] });
    expect(r.status).toBe(status);
    expect(r.headers['retry-after']).toBe('1');
    await waitFor(() => pool.records.some((x) => x.refusal === reason), 2000, `a ${reason} record`);
    expect(pool.records.find((x) => x.refusal === reason)).toMatchObject({ peer: who, status });
    expect(pool.sim.requests).toHaveLength(requests);
    expect(connections).toBe(conns);
  });
});

describe('zero bytes to Ollama: the audit trail unavailable', () => {
  test('audit_unavailable → 503 while records cannot be written ("refuse"), recorded once they can, and Ollama sees nothing', async () => {
    let full = true;
    const written: string[] = [];
    const spool = {
      append: (batch: { refusal: string | null }[]) => {
        if (full) throw Object.assign(new Error('attempt to write a readonly database'), { code: 'SQLITE_READONLY' });
        written.push(...batch.map((r) => String(r.refusal)));
      },
      probe: () => {
        if (full) throw Object.assign(new Error('attempt to write a readonly database'), { code: 'SQLITE_READONLY' });
      },
    };
    const trail = createAuditTrail({ spool, mode: 'refuse', metrics: guardMetrics(new Registry()), log: silentLog, intervalMs: 20, probeMs: 20 });
    trail.failed(new Error('attempt to write a readonly database'), 'the peer set');
    const audited = await startEnv({ record: trail.record, audit: trail, peers: [{ name: 'alice', address: '127.0.0.1', policy: FAST }] });
    let conns = 0;
    audited.sim.server.on('connection', () => conns++);
    try {
      for (const o of [{ path: '/api/generate', body: gen }, { path: '/api/show', body: { model: 'llama3.2' } }, { path: '/api/tags' }, { path: '/v1/models' }] as RequestOptions[]) {
        const r = await audited.request('alice', o);
        expect(r.status).toBe(503);
        expect(r.headers['retry-after']).toBe('1');
      }
      expect(audited.sim.requests).toEqual([]);
      expect(conns).toBe(0);
      full = false;
      await waitFor(() => written.length === 4, 2000, 'the refusals written once the spool can be');
      expect(written).toEqual(Array(4).fill('audit_unavailable'));
    } finally {
      trail.stop();
      await audited.close();
    }
  });
});
