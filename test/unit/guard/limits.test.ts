/**
 * Layer 4, limits: request rate, concurrent streams, the daily token budget,
 * body and header size, slow clients and ambiguous framing. Each refusal has
 * its exact answer, and the simulator never sees the refused request.
 */
import https from 'node:https';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { secondsUntilUtcMidnight } from '../../../src/core/rate.js';
import { errorOf, ndjson, parseRaw, readUntilClose, startEnv, type GuardEnv, exactRecords } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

let env: GuardEnv;
const FAST = { requestsPerMinute: 100_000, burst: 1000 };
const HEADER_TIMEOUT_SEC = 0.5;

beforeAll(async () => {
  env = await startEnv({
    limits: { maxBodyBytes: 1024, maxHeaderBytes: 2048, headerTimeoutSec: HEADER_TIMEOUT_SEC, bodyTimeoutSec: 1 },
    peers: [
      { name: 'alice', address: '127.0.0.1', policy: { ...FAST, maxStreams: 1 } },
      { name: 'bob', address: '127.0.0.2', policy: { requestsPerMinute: 1, burst: 2 } },
      { name: 'carol', address: '127.0.0.3', policy: { ...FAST, tokensPerDay: 10 } },
    ],
  });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.sim.clear();
  env.records.length = 0;
});

const chat = (extra: object = {}) => ({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue?' }], ...extra });


describe('rate and concurrency', () => {
  test('over the request rate → 429 with Retry-After until the bucket refills', async () => {
    for (let i = 0; i < 2; i++) expect((await env.request('bob', { path: '/api/version', localAddress: '127.0.0.2' })).status).toBe(200);
    const r = await env.request('bob', { path: '/api/version', localAddress: '127.0.0.2' });
    expect(r.status).toBe(429);
    expect(errorOf(r)).toBe('rate limit exceeded');
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(59);
    expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(env.sim.requests).toHaveLength(2);
    expect((await exactRecords(env, 3))[2]).toMatchObject({ peer: 'bob', status: 429, refusal: 'rate_limited' });
  });

  test('more concurrent streams than maxStreams → 429; other endpoints still answer; a freed slot is usable again', async () => {
    // a stream of 100000 tokens at 1000/s: running until we cut it
    const first = https.request({ host: '127.0.0.1', port: env.port, method: 'POST', path: '/api/chat', agent: false, ...env.tlsFor('alice') });
    const gotChunk = new Promise<void>((resolve, reject) => {
      first.on('response', (res) => res.once('data', () => resolve()));
      first.on('error', reject);
    });
    first.end(JSON.stringify(chat({ options: { num_predict: 100_000 } })));
    await gotChunk;

    const r = await env.request('alice', { path: '/api/chat', body: chat() });
    expect(r.status).toBe(429);
    expect(errorOf(r)).toBe('too many concurrent requests (limit 1)');
    expect(r.headers['retry-after']).toBe('1');
    expect((await env.request('alice', { path: '/api/tags' })).status).toBe(200);
    expect(env.sim.requests.map((q) => q.path)).toEqual(['/api/chat', '/api/tags']);

    first.on('error', () => undefined);
    first.destroy();
    await waitFor(() => env.sim.requests[0]!.ended, 1000, 'the first stream ended upstream');
    expect(env.sim.requests[0]!.aborted).toBe(true);
    await waitFor(() => env.records.length === 3, 1000, 'the first stream recorded');
    const again = await env.request('alice', { path: '/api/chat', body: chat({ stream: false }) });
    expect(again.status).toBe(200);
  });
  test('two streams started at the same instant with maxStreams 1: one is served, the other gets 429', async () => {
    const long = chat({ options: { num_predict: 100_000 } });
    const opened = [0, 1].map(() => {
      const req = https.request({ host: '127.0.0.1', port: env.port, method: 'POST', path: '/api/chat', agent: false, headers: { 'content-type': 'application/json' }, ...env.tlsFor('alice') });
      req.on('error', () => undefined);
      const status = new Promise<number>((resolve) => req.on('response', (res) => {
        res.on('error', () => undefined);
        resolve(res.statusCode ?? 0);
      }));
      // head first, body a moment later: both heads are decided while both bodies are still on their way
      req.flushHeaders();
      return { req, status };
    });
    let statuses: number[];
    try {
      await new Promise((r) => setTimeout(r, 50));
      for (const o of opened) o.req.end(JSON.stringify(long));
      statuses = await Promise.all(opened.map((o) => o.status));
    } finally {
      for (const o of opened) o.req.destroy();
      await waitFor(() => env.sim.requests.every((q) => q.ended), 1000, 'the streams ended upstream');
      await waitFor(() => env.records.length === 2, 1000, 'both requests recorded');
    }
    expect(statuses.sort()).toEqual([200, 429]);
    expect(env.sim.requests).toHaveLength(1);
  });
});

describe('daily token budget', () => {
  test("used up by Ollama's own counts → 429 with Retry-After until UTC midnight; nothing more is forwarded", async () => {
    // Not streamed: a stream that crosses the budget is cut (charge.test.ts); this one is generated whole and served.
    const ok = await env.request('carol', { path: '/api/chat', body: chat({ stream: false }), localAddress: '127.0.0.3' });
    expect(ok.status).toBe(200);
    const last = ndjson(ok.text).at(-1)!;
    expect(last.prompt_eval_count + last.eval_count).toBeGreaterThanOrEqual(10);
    await exactRecords(env, 1);

    const r = await env.request('carol', { path: '/api/generate', body: { model: 'llama3.2', prompt: 'more' }, localAddress: '127.0.0.3' });
    expect(r.status).toBe(429);
    expect(errorOf(r)).toBe('daily token budget of 10 used up');
    const expected = secondsUntilUtcMidnight(Date.now());
    expect(Math.abs(Number(r.headers['retry-after']) - expected)).toBeLessThanOrEqual(2);
    expect(env.sim.requests).toHaveLength(1);
    expect(env.records[1]).toMatchObject({ peer: 'carol', status: 429, refusal: 'token_budget' });
    // listing models costs no tokens
    expect((await env.request('carol', { path: '/api/tags', localAddress: '127.0.0.3' })).status).toBe(200);
  });

  test("what the gateway says a peer used today counts too (a restarted guard keeps the budget)", async () => {
    const set = env.peerSet({ policies: { alice: { tokensPerDay: 500 } } });
    set.tokensToday = { alice: 500 };
    env.guard.setPeers(set);
    try {
      const r = await env.request('alice', { path: '/api/chat', body: chat() });
      expect(r.status).toBe(429);
      expect(errorOf(r)).toBe('daily token budget of 500 used up');
      expect(env.sim.requests).toHaveLength(0);
    } finally {
      env.guard.setPeers(env.peerSet());
    }
  });
});

describe('sizes', () => {
  test('a declared body over maxBodyBytes → 413 before a byte of it is read', async () => {
    const body = JSON.stringify(chat({ pad: 'x'.repeat(2000) }));
    const r = await env.request('alice', { path: '/api/chat', body });
    expect(r.status).toBe(413);
    expect(errorOf(r)).toBe('request body too large (limit 1024 bytes)');
    expect(r.headers.connection).toBe('close');
    expect(env.sim.requests).toHaveLength(0);
    expect((await exactRecords(env, 1))[0]).toMatchObject({ status: 413, refusal: 'body_too_large', bytesIn: 0 });
  });

  test('a chunked body growing over maxBodyBytes → 413; one just under the limit passes', async () => {
    const over = await env.request('alice', { path: '/api/chat', body: JSON.stringify(chat({ pad: 'x'.repeat(2000) })), headers: { 'transfer-encoding': 'chunked' } });
    expect(over.status).toBe(413);
    expect(errorOf(over)).toBe('request body too large (limit 1024 bytes)');
    expect(env.sim.requests).toHaveLength(0);
    const base = JSON.stringify(chat({ stream: false, pad: '' }));
    const fits = JSON.stringify(chat({ stream: false, pad: 'x'.repeat(1024 - base.length) }));
    expect(fits.length).toBe(1024);
    const ok = await env.request('alice', { path: '/api/chat', body: fits, headers: { 'transfer-encoding': 'chunked' } });
    expect(ok.status).toBe(200);
    expect(env.sim.requests.map((q) => q.bodyBytes)).toEqual([1024]);
  });

  test('request headers over maxHeaderBytes → 431 in JSON, connection closed', async () => {
    const r = await env.request('alice', { path: '/api/version', headers: { 'x-pad': 'y'.repeat(3000) } });
    expect(r.status).toBe(431);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.headers.connection).toBe('close');
    expect(errorOf(r)).toBe('request headers too large');
    expect(env.sim.requests).toHaveLength(0);
    expect((await exactRecords(env, 1))[0]).toMatchObject({ peer: 'alice', certSerial: env.certs.get('alice')!.serial, status: 431, refusal: 'headers_too_large' });
  });
});

describe('slow and ambiguous clients', () => {
  test.each([
    ['stops half way through the head', false],
    ['trickles the head a byte at a time', true],
  ])('a client that %s gets 408 and is closed soon after headerTimeoutSec and never reaches Ollama', async (_, trickle) => {
    const s = await env.rawTls('alice');
    s.write('POST /api/chat HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\n');
    let timer: NodeJS.Timeout | undefined;
    if (trickle) {
      let i = 0;
      timer = setInterval(() => !s.destroyed && i < 400 && s.write(`X-${i++}: y\r\n`), 50);
    }
    const t0 = Date.now();
    const res = await readUntilClose(s, 5000);
    clearInterval(timer);
    expect(res.closed).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(HEADER_TIMEOUT_SEC * 1000 - 100);
    expect(Date.now() - t0).toBeLessThan(HEADER_TIMEOUT_SEC * 1000 + 1500);
    const p = parseRaw(res.data);
    expect(p.status).toBe(408);
    expect(errorOf(p)).toBe('request not received in time');
    expect(env.sim.requests).toHaveLength(0);
    expect((await exactRecords(env, 1))[0]).toMatchObject({ status: 408, refusal: 'request_timeout', source: '127.0.0.1' });
  });

  test('a body that never completes is cut, and the half request never reaches Ollama', async () => {
    const s = await env.rawTls('alice');
    s.write('POST /api/chat HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":');
    const res = await readUntilClose(s, 5000);
    expect(res.closed).toBe(true);
    // bodyTimeoutSec + headerTimeoutSec = 1.5 s for the whole request
    expect(res.afterMs).toBeGreaterThanOrEqual(1300);
    expect(res.afterMs).toBeLessThan(3000);
    const p = parseRaw(res.data);
    expect(p.status).toBe(408);
    expect(errorOf(p)).toBe('request not received in time');
    expect(env.sim.requests).toHaveLength(0);
    const [rec] = await exactRecords(env, 1);
    expect(rec).toMatchObject({ peer: 'alice', method: 'POST', path: '/api/chat', endpoint: 'chat', status: 408, refusal: 'request_timeout' });
  });

  test('Content-Length together with Transfer-Encoding → 400, nothing forwarded', async () => {
    const s = await env.rawTls('alice');
    const body = JSON.stringify(chat({ stream: false }));
    s.write(
      `POST /api/chat HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    );
    const res = await readUntilClose(s, 2000);
    expect(res.closed).toBe(true);
    const p = parseRaw(res.data);
    expect(p.status).toBe(400);
    expect(errorOf(p)).toBe('request has both Content-Length and Transfer-Encoding');
    expect(env.sim.requests).toHaveLength(0);
    expect((await exactRecords(env, 1))[0]).toMatchObject({ status: 400, refusal: 'ambiguous_length' });
  });
});

describe('requests to Ollama in flight', () => {
  test('beyond maxUpstreamRequests a request is answered 503 with Retry-After at once, not queued; a freed slot is usable again', async () => {
    const own = await startEnv({ limits: { maxUpstreamRequests: 1 }, peers: [{ name: 'alice', address: '127.0.0.1', policy: FAST }, { name: 'bob', address: '127.0.0.2', policy: FAST }] });
    try {
      const first = https.request({ host: '127.0.0.1', port: own.port, method: 'POST', path: '/api/chat', agent: false, ...own.tlsFor('alice') });
      first.on('error', () => undefined);
      const gotChunk = new Promise<void>((resolve) => first.on('response', (res) => res.once('data', () => resolve())));
      first.end(JSON.stringify(chat({ options: { num_predict: 100_000 } })));
      await gotChunk;

      const r = await own.request('bob', { path: '/api/version', localAddress: '127.0.0.2' });
      expect(r.status).toBe(503);
      expect(errorOf(r)).toBe('server busy, please try again (too many requests in flight)');
      expect(r.headers['retry-after']).toBe('1');
      // alice herself is at her own cap (a pool of one allows one per peer): hers is a 429
      const mine = await own.request('alice', { path: '/api/version' });
      expect(mine.status).toBe(429);
      expect(errorOf(mine)).toBe('too many requests in flight for this peer (limit 1)');
      expect(own.sim.requests.map((q) => q.path)).toEqual(['/api/chat']);

      first.destroy();
      await waitFor(() => own.sim.requests[0]!.ended, 1000, 'the first request ended upstream');
      await waitFor(() => own.records.length === 3, 1000, 'the three records');
      expect((await own.request('alice', { path: '/api/version' })).status).toBe(200);
    } finally {
      await own.close();
    }
  });
});
