/**
 * The connector against the real guard in process: unmodified clients with no
 * certificate configuration (the `ollama` and `openai` npm clients, plain
 * fetch), streaming, refusals passed through byte for byte, the client going
 * away, revocation, and the connector's own errors when the guard cannot be
 * used.
 */
import { once } from 'node:events';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCa, issueCertificate } from '../../../src/pki/ca.js';
import { DAY_MS, errorOf, ndjson } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';
import { startConnectEnv, startConnector, type ConnectEnv } from '../../support/connect-env.js';

let ce: ConnectEnv;

beforeAll(async () => {
  ce = await startConnectEnv({ sim: { tokenRate: 200, tokens: 12 }, peers: [{ name: 'alice', address: '127.0.0.1', policy: { models: ['llama3.2', 'nomic-embed-text'] } }] });
});
afterAll(async () => {
  await ce?.close();
});
beforeEach(() => {
  ce.env.sim.clear();
  ce.env.records.length = 0;
});

/** A direct mTLS request to the guard with alice's certificate, for comparison. */
const direct = (path: string, init: { method?: string; body?: unknown } = {}) =>
  ce.env.request('alice', { path, method: init.method, body: init.body });

describe('unmodified clients through the connector', () => {
  it('the ollama npm client streams a chat and lists the peer\'s models, with no certificate configuration', async () => {
    const ollama = new Ollama({ host: ce.url });
    const stream = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let chunks = 0;
    let last: { done?: boolean; eval_count?: number } = {};
    for await (const part of stream) {
      chunks++;
      last = part;
    }
    expect(chunks).toBe(13); // 12 tokens, then the final statistics
    expect(last).toMatchObject({ done: true, eval_count: 12 });
    expect((await ollama.list()).models.map((m) => m.name)).toEqual(['llama3.2:latest', 'nomic-embed-text:latest']);
    // The guard saw alice, by her certificate, for both.
    expect(ce.env.records.map((r) => [r.peer, r.path, r.status])).toEqual([['alice', '/api/chat', 200], ['alice', '/api/tags', 200]]);
  });

  it('the openai npm client streams a completion; its API key does not leave the laptop', async () => {
    const openai = new OpenAI({ baseURL: `${ce.url}/v1`, apiKey: 'ollama' });
    const stream = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    expect(ce.env.records.at(-1)).toMatchObject({ peer: 'alice', path: '/v1/chat/completions', status: 200 });
  });

  it('GET / and HEAD / answer as Ollama does', async () => {
    const get = await fetch(`${ce.url}/`);
    expect([get.status, await get.text()]).toEqual([200, 'Ollama is running']);
    const head = await fetch(`${ce.url}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(ce.env.sim.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /', 'HEAD /']);
  });

  it('streams chunk by chunk: the first line arrives long before the answer ends', async () => {
    const r = await fetch(`${ce.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', prompt: 'x', options: { num_predict: 40 } }) });
    const reader = r.body!.getReader();
    const t0 = Date.now();
    const first = await reader.read();
    const tFirst = Date.now() - t0;
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += Buffer.from(value).toString();
    }
    const tAll = Date.now() - t0;
    expect(ndjson(Buffer.from(first.value!).toString())[0]).toMatchObject({ model: 'llama3.2', done: false });
    // 40 tokens at 200/s take ~200 ms; the first line comes with the first token.
    expect(tAll - tFirst).toBeGreaterThan(100);
    expect(ndjson(rest).at(-1)).toMatchObject({ done: true, eval_count: 40 });
  });
});

describe('the guard decides; the connector passes its answers through', () => {
  it.each([
    ['a model outside the allowlist', '/api/chat', { model: 'qwen2.5:0.5b', messages: [] }],
    ['pull', '/api/pull', { model: 'llama3.2' }],
    ['an unknown path', '/api/nope', { model: 'llama3.2' }],
  ])('%s: the same status, headers that matter and body as a direct client; nothing reaches Ollama', async (_what, path, body) => {
    const d = await direct(path, { method: 'POST', body });
    const v = await fetch(`${ce.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const text = await v.text();
    expect(v.status).toBe(d.status);
    expect(v.status).toBeGreaterThanOrEqual(400);
    expect(text).toBe(d.text);
    expect(errorOf({ text }).length).toBeGreaterThan(0);
    expect(v.headers.get('content-type')).toBe(d.headers['content-type']);
    expect(ce.env.sim.requests).toEqual([]);
  });

  it('a browser page cannot drive the peer: Origin goes on to the guard, which refuses it', async () => {
    const r = await fetch(`${ce.url}/api/generate`, { method: 'POST', body: '{"model":"llama3.2","prompt":"x"}', headers: { origin: 'https://evil.example', 'content-type': 'text/plain' } });
    expect(r.status).toBe(403);
    expect(errorOf({ text: await r.text() })).toMatch(/web pages/);
    expect(ce.env.sim.requests).toEqual([]);
  });

  it('a browser opening the connector\'s address gets a note pointing to the chat page, not a page that cannot send', async () => {
    const r = await fetch(`${ce.url}/`, { headers: { accept: 'text/html,*/*;q=0.8', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    const text = await r.text();
    expect(text).toContain(`https://127.0.0.1:${ce.env.port}/`);
    expect(text).toMatch(/for Ollama and OpenAI clients on this computer/);
    expect(ce.env.records).toEqual([]);
    // API clients still get Ollama's answer at /.
    const api = await fetch(`${ce.url}/`);
    expect(await api.text()).toBe('Ollama is running');
  });

  it('a page that rebinds its DNS name to 127.0.0.1 gets 403 from the connector itself', async () => {
    const r = await rawHttp(ce.url, 'GET /api/tags HTTP/1.1\r\nHost: rebind.evil.example:11434\r\nConnection: close\r\n\r\n');
    expect(r).toMatch(/^HTTP\/1\.1 403 /);
    expect(r).toMatch(/is not this connector/);
    expect(ce.env.records).toEqual([]);
  });
});

describe('refusals before the body was read', () => {
  it("a large body the guard refused early (429) does not wedge the client's next requests", async () => {
    const limited = await startConnectEnv({ peers: [{ name: 'alice', address: '127.0.0.1', policy: { requestsPerMinute: 1, burst: 1 } }] });
    try {
      const body = JSON.stringify({ model: 'llama3.2', input: 'x'.repeat(600_000) });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await fetch(`${limited.url}/api/embed`, { method: 'POST', body, headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(3000) });
        await r.text();
        statuses.push(r.status);
      }
      expect(statuses).toEqual([200, 429, 429, 429]);
    } finally {
      await limited.close();
    }
  });

  it("a revoked peer's large upload gets the guard's 401, not a 502 about the tunnel", async () => {
    ce.env.guard.setPeers(ce.env.peerSet({ without: ['alice'] }));
    try {
      const r = await fetch(`${ce.url}/api/embed`, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', input: 'x'.repeat(1_000_000) }), headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(5000) });
      expect(r.status).toBe(401);
      expect(errorOf({ text: await r.text() })).toMatch(/revoked or belongs to no active peer/);
      expect(ce.warnings.filter((w) => /tunnel/.test(w))).toEqual([]);
    } finally {
      ce.env.guard.setPeers(ce.env.peerSet());
    }
  });

  it('a request target that is not a path is bad input (400), not a tunnel problem', async () => {
    const r = await rawHttp(ce.url, `OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:${new URL(ce.url).port}\r\nConnection: close\r\n\r\n`);
    expect(r).toMatch(/^HTTP\/1\.1 400 /);
    expect(r).not.toMatch(/tunnel/);
    const abs = await rawHttp(ce.url, `GET http://evil.example/api/tags HTTP/1.1\r\nHost: 127.0.0.1:${new URL(ce.url).port}\r\nConnection: close\r\n\r\n`);
    expect(abs).toMatch(/^HTTP\/1\.1 400 /);
    expect(ce.env.records).toEqual([]);
  });
});

describe('going away and being cut off', () => {
  it('a client that leaves mid-stream aborts the request at Ollama', async () => {
    const ac = new AbortController();
    const r = await fetch(`${ce.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', prompt: 'x', options: { num_predict: 2000 } }), signal: ac.signal });
    const reader = r.body!.getReader();
    await reader.read();
    ac.abort();
    await waitFor(() => ce.env.sim.requests[0]?.ended === true, 3000, 'Ollama to see the request end');
    expect(ce.env.sim.requests[0]).toMatchObject({ aborted: true });
    expect(ce.env.sim.requests[0]!.tokens).toBeLessThan(2000);
  });

  it('revoking the peer cuts its stream at the client, and the next request gets the guard\'s refusal', async () => {
    const r = await fetch(`${ce.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', prompt: 'x', options: { num_predict: 2000 } }) });
    const reader = r.body!.getReader();
    await reader.read();
    ce.env.guard.setPeers(ce.env.peerSet({ without: ['alice'] }));
    const t0 = Date.now();
    await expect((async () => {
      for (;;) if ((await reader.read()).done) return 'ended cleanly';
    })()).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(1000);
    const next = await fetch(`${ce.url}/api/tags`);
    expect(next.status).toBe(401);
    expect(errorOf({ text: await next.text() })).toMatch(/revoked or belongs to no active peer/);
    ce.env.guard.setPeers(ce.env.peerSet());
  });
});

describe("the connector's own errors", () => {
  let silent: TcpServer;
  beforeAll(async () => {
    silent = createTcpServer(() => undefined); // accepts, never answers TLS: a tunnel that swallows packets
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
  });
  afterAll(() => {
    silent.close();
  });

  it('nothing listening at the guard address: 502, naming the guard', async () => {
    const free = createTcpServer();
    free.listen(0, '127.0.0.1');
    await once(free, 'listening');
    const port = (free.address() as AddressInfo).port;
    await new Promise((r) => free.close(r));
    const c = await startConnector(ce.env, { guardUrl: `https://127.0.0.1:${port}` });
    try {
      const r = await fetch(`${c.url}/api/tags`);
      expect(r.status).toBe(502);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      expect(errorOf({ text: await r.text() })).toBe(`the wg-ollama guard at https://127.0.0.1:${port} refused the connection (ECONNREFUSED): the tunnel is up but the guard is not running; tell your admin`);
      expect(c.warnings).toHaveLength(1);
    } finally {
      await c.connector.close();
    }
  });

  it('a guard that never answers (tunnel down): 502 after the connect timeout, suggesting the tunnel', async () => {
    const port = (silent.address() as AddressInfo).port;
    const c = await startConnector(ce.env, { guardUrl: `https://127.0.0.1:${port}`, connectTimeoutMs: 300 });
    try {
      const r = await fetch(`${c.url}/api/chat`, { method: 'POST', body: '{}' });
      expect(r.status).toBe(502);
      expect(errorOf({ text: await r.text() })).toMatch(new RegExp(`^cannot reach the wg-ollama guard at https://127\\.0\\.0\\.1:${port} \\(UND_ERR_CONNECT_TIMEOUT\\): is the WireGuard tunnel up\\?`));
    } finally {
      await c.connector.close();
    }
  });

  it('a server whose certificate is not from the profile\'s CA: 502, and the request is not sent', async () => {
    const other = createCa({ commonName: 'someone else' });
    const cert = issueCertificate(other, { role: 'guard-server', commonName: 'impostor', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + DAY_MS) });
    let requests = 0;
    const impostor = createHttpsServer({ key: cert.keyPem, cert: cert.certPem }, (_req, res) => {
      requests++;
      res.end('{}');
    });
    impostor.listen(0, '127.0.0.1');
    await once(impostor, 'listening');
    const c = await startConnector(ce.env, { guardUrl: `https://127.0.0.1:${(impostor.address() as AddressInfo).port}` });
    try {
      const r = await fetch(`${c.url}/api/generate`, { method: 'POST', body: '{"model":"llama3.2","prompt":"secret"}' });
      expect(r.status).toBe(502);
      expect(errorOf({ text: await r.text() })).toMatch(/is not the wg-ollama guard this profile trusts/);
      expect(requests).toBe(0);
    } finally {
      await c.connector.close();
      impostor.close();
    }
  });
});

describe('what goes to the guard', () => {
  it('hop-by-hop headers and local credentials stay behind; the rest, the method, the path and the body go as they are', async () => {
    const cert = issueCertificate(ce.env.ca, { role: 'guard-server', commonName: 'echo', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + DAY_MS) });
    const echo = createHttpsServer({ key: cert.keyPem, cert: cert.certPem, ca: ce.env.ca.certPem, requestCert: true }, (req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
        res.setHeader('x-echo', 'yes');
        res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(parts).toString(), cn: peer.subject?.CN }));
      });
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    const c = await startConnector(ce.env, { guardUrl: `https://127.0.0.1:${(echo.address() as AddressInfo).port}` });
    try {
      const r = await fetch(`${c.url}/api/chat?x=1`, {
        method: 'POST',
        body: '{"model":"m"}',
        headers: { authorization: 'Bearer sk-local', cookie: 'a=b', 'content-type': 'application/json', 'x-custom': 'kept', 'user-agent': 'ua/1' },
      });
      const seen = (await r.json()) as { method: string; url: string; headers: Record<string, string>; body: string; cn: string };
      expect(r.headers.get('x-echo')).toBe('yes');
      expect(seen).toMatchObject({ method: 'POST', url: '/api/chat?x=1', body: '{"model":"m"}', cn: 'alice' });
      expect(seen.headers).toMatchObject({ 'content-type': 'application/json', 'x-custom': 'kept', 'user-agent': 'ua/1', 'content-length': '13' });
      expect(seen.headers.authorization).toBeUndefined();
      expect(seen.headers.cookie).toBeUndefined();
      expect(seen.headers.host).toBe(`127.0.0.1:${(echo.address() as AddressInfo).port}`);
    } finally {
      await c.connector.close();
      echo.close();
    }
  });
});

/** Sends raw bytes and returns everything the server answered until it closed. */
async function rawHttp(url: string, text: string): Promise<string> {
  const { port } = new URL(url);
  const { connect } = await import('node:net');
  const s = connect(Number(port), '127.0.0.1');
  s.write(text);
  let out = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => (out += d));
  await once(s, 'close');
  return out;
}
