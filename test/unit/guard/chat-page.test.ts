/**
 * The guard's chat page over real TLS on loopback: the page and its files go
 * only to a peer's good certificate, API clients still get Ollama's `GET /`,
 * a browser without a certificate gets the HTML help page while API clients
 * keep the JSON 401, the page's own origin may call the API and every other
 * origin is refused before Ollama, every HTML/asset answer carries the CSP,
 * and asset paths are looked up exactly (no traversal, nothing forwarded).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { CHAT_DIR, loadChatSite } from '../../../src/guard/browser.js';

/** The chat page's policy, written out: a weakened policy in src fails here. */
const CHAT_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
import { requestRecordSchema } from '../../../src/core/request-record.js';
import { isWgoError } from '../../../src/errors.js';
import { errorOf, ndjson, startEnv, type GuardEnv, type Reply } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

let env: GuardEnv;
let origin: string;

beforeAll(async () => {
  env = await startEnv({
    peers: [
      { name: 'alice', address: '127.0.0.1', policy: { models: ['llama3.2', 'qwen2.5:*'], requestsPerMinute: 100_000, burst: 1000 } },
      { name: 'bob', address: '127.0.0.2' },
    ],
  });
  origin = `https://127.0.0.1:${env.port}`;
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.sim.clear();
  env.records.length = 0;
});

const CHROME_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8';
/** What Chromium sends when the user opens the address. */
const NAVIGATE = { accept: CHROME_ACCEPT, 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', 'sec-fetch-site': 'none', 'sec-fetch-user': '?1' };
const SAFARI_15 = 'Mozilla/5.0 (iPhone; CPU iPhone OS 15_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.6 Mobile/15E148 Safari/604.1';
const file = (name: string): string => readFileSync(join(CHAT_DIR, name), 'utf8');

function expectWebHeaders(r: Reply): void {
  expect(r.headers['content-security-policy']).toBe(CHAT_CSP);
  expect(r.headers['x-content-type-options']).toBe('nosniff');
  expect(r.headers['referrer-policy']).toBe('no-referrer');
  expect(r.headers['x-frame-options']).toBe('DENY');
}

async function oneRecord() {
  await waitFor(() => env.records.length === 1, 2000, 'the record');
  const rec = env.records[0]!;
  env.records.length = 0;
  return rec;
}

describe('the chat page for a peer', () => {
  test('a navigation to / gets the page from web/chat, with the CSP, uncached; Ollama hears nothing; it is recorded as endpoint "web"', async () => {
    const r = await env.request('alice', { path: '/', headers: NAVIGATE });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.text).toBe(file('index.html'));
    expectWebHeaders(r);
    expect(r.headers['cache-control']).toBe('no-store');
    expect(env.sim.requests).toEqual([]);
    const rec = await oneRecord();
    expect(rec).toMatchObject({ peer: 'alice', method: 'GET', path: '/', endpoint: 'web', status: 200, refusal: null, model: null, bytesOut: Buffer.byteLength(file('index.html')) });
    // The gateway takes it over the sync API as it is.
    expect(requestRecordSchema.safeParse({ ...rec, seq: 1 }).success).toBe(true);
  });

  test('Safari without Fetch Metadata (Accept text/html first) also gets the page; HEAD gets its headers only', async () => {
    const r = await env.request('alice', { path: '/', headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', 'user-agent': SAFARI_15 } });
    expect(r.status).toBe(200);
    expect(r.text).toBe(file('index.html'));
    const h = await env.request('alice', { method: 'HEAD', path: '/', headers: NAVIGATE });
    expect(h.status).toBe(200);
    expect(h.text).toBe('');
    expect(Number(h.headers['content-length'])).toBe(Buffer.byteLength(file('index.html')));
    expectWebHeaders(h);
    expect(env.sim.requests).toEqual([]);
  });

  test.each<[string, string, string, string]>([
    ['/_wgo/chat.js', 'chat.js', 'text/javascript; charset=utf-8', 'no-cache'],
    ['/_wgo/chat.css', 'chat.css', 'text/css; charset=utf-8', 'no-cache'],
    ['/_wgo/icon.svg', 'icon.svg', 'image/svg+xml', 'no-cache'],
  ])('%s is served from memory with its type, the CSP and an ETag that answers 304', async (path, name, type, cache) => {
    const r = await env.request('alice', { path, headers: { accept: '*/*', 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'no-cors' } });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe(type);
    expect(r.text).toBe(file(name));
    expect(r.headers['cache-control']).toBe(cache);
    expectWebHeaders(r);
    expect(r.headers.etag).toMatch(/^"[\w-]{27}"$/);
    const again = await env.request('alice', { path, headers: { 'if-none-match': r.headers.etag! } });
    expect(again.status).toBe(304);
    expect(again.text).toBe('');
    expect(again.headers['content-security-policy']).toBe(CHAT_CSP);
    const stale = await env.request('alice', { path, headers: { 'if-none-match': '"something-else"' } });
    expect(stale.status).toBe(200);
    expect(env.sim.requests).toEqual([]);
  });

  test('the page has no inline script or style, and every file it names is one the guard serves', async () => {
    const html = file('index.html');
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/i); // every <script> has a src
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=|javascript:/i);
    const refs = [...html.matchAll(/\s(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.sort()).toEqual(['/_wgo/chat.css', '/_wgo/chat.js', '/_wgo/icon.svg']);
    for (const ref of refs) expect((await env.request('alice', { path: ref })).status).toBe(200);
    // Model output goes into the page as text only.
    expect(file('chat.js')).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
    expect(file('help.html')).not.toMatch(/<script|<style|\sstyle=|\son[a-z]+=/i);
  });
});

describe('API clients are unaffected', () => {
  test.each<[string, Record<string, string>]>([
    ['no Accept', {}],
    ['curl (Accept */*)', { accept: '*/*' }],
    ['Accept application/json', { accept: 'application/json' }],
    ['a fetch() that asks for HTML (Sec-Fetch-Mode cors)', { accept: 'text/html', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty', 'sec-fetch-site': 'same-origin' }],
  ])('GET / and HEAD / with %s reach Ollama: "Ollama is running"', async (_what, headers) => {
    const r = await env.request('alice', { path: '/', headers });
    expect(r.status).toBe(200);
    expect(r.text).toBe('Ollama is running');
    expect(r.headers['content-security-policy']).toBeUndefined();
    const h = await env.request('alice', { method: 'HEAD', path: '/', headers });
    expect(h.status).toBe(200);
    expect(h.text).toBe('');
    expect(env.sim.requests.map((q) => `${q.method} ${q.path}`)).toEqual(['GET /', 'HEAD /']);
    await waitFor(() => env.records.length === 2, 2000, 'the records');
    expect(env.records.map((x) => x.endpoint)).toEqual(['version', 'version']);
  });
});

describe('without a good certificate', () => {
  test('a navigation gets the HTML help page, 401, with the CSP; it is recorded with the refusal', async () => {
    for (const path of ['/', '/api/tags', '/_wgo/chat.js']) {
      const r = await env.request(null, { path, headers: NAVIGATE });
      expect(r.status).toBe(401);
      expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(r.text).toBe(file('help.html'));
      expect(r.text).toMatch(/iPhone[\s\S]*Android[\s\S]*macOS[\s\S]*Windows/);
      expectWebHeaders(r);
      expect(r.headers['cache-control']).toBe('no-store');
      expect(await oneRecord()).toMatchObject({ peer: null, endpoint: 'web', status: 401, refusal: 'auth_no_certificate', path });
    }
    expect(env.sim.requests).toEqual([]);
  });

  test('a certificate used from another address: the help page with 403', async () => {
    const r = await env.request('alice', { path: '/', headers: NAVIGATE, localAddress: '127.0.0.2' });
    expect(r.status).toBe(403);
    expect(r.text).toBe(file('help.html'));
    expect(await oneRecord()).toMatchObject({ endpoint: 'web', refusal: 'auth_wrong_source' });
  });

  test.each<[string, string, Record<string, string>]>([
    ['GET /', '/', {}],
    ['GET / with Accept */*', '/', { accept: '*/*' }],
    ['an asset', '/_wgo/chat.js', { accept: '*/*' }],
    ['an asset fetched by a page (no-cors)', '/_wgo/chat.js', { accept: 'text/html', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'script' }],
    ['the model list', '/api/tags', { accept: 'application/json' }],
  ])('an API request (%s) keeps the JSON 401', async (_what, path, headers) => {
    const r = await env.request(null, { path, headers });
    expect(r.status).toBe(401);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(errorOf(r)).toBe('client certificate required');
    expect(r.headers['content-security-policy']).toBeUndefined();
    expect(await oneRecord()).toMatchObject({ endpoint: null, refusal: 'auth_no_certificate' });
    expect(env.sim.requests).toEqual([]);
  });

  test('a peer that is no longer in the set gets the help page too, and no file', async () => {
    env.guard.setPeers(env.peerSet({ without: ['alice'] }));
    try {
      const page = await env.request('alice', { path: '/', headers: NAVIGATE });
      expect(page.status).toBe(401);
      expect(page.text).toBe(file('help.html'));
      const js = await env.request('alice', { path: '/_wgo/chat.js' });
      expect(js.status).toBe(401);
      expect(errorOf(js)).toBe('client certificate is revoked or belongs to no active peer');
    } finally {
      env.guard.setPeers(env.peerSet());
    }
  });
});

describe('same origin only', () => {
  const chat = { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] };

  test("the page's own POST /api/chat (Origin = https:// + Host, same-origin) streams from Ollama", async () => {
    const r = await env.request('alice', { path: '/api/chat', body: chat, headers: { origin, 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' } });
    expect(r.status).toBe(200);
    const lines = ndjson(r.text);
    expect(lines.at(-1)).toMatchObject({ done: true, eval_count: 20 });
    expect(env.sim.requests.map((q) => `${q.method} ${q.path}`)).toEqual(['POST /api/chat']);
    // Origin and Fetch Metadata stay at the guard.
    expect(Object.keys(env.sim.requests[0]!.headers).filter((h) => h === 'origin' || h.startsWith('sec-fetch'))).toEqual([]);
  });

  test('the same Origin from a browser without Fetch Metadata is allowed; GET /api/tags from the page is filtered', async () => {
    const r = await env.request('alice', { path: '/api/chat', body: chat, headers: { origin } });
    expect(r.status).toBe(200);
    const tags = await env.request('alice', { path: '/api/tags', headers: { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' } });
    expect(JSON.parse(tags.text).models.map((m: { name: string }) => m.name)).toEqual(['llama3.2:latest', 'qwen2.5:0.5b']);
  });

  test.each<[string, Record<string, string>]>([
    ['another origin', { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }],
    ['another origin, text/plain, no Fetch Metadata', { origin: 'https://evil.example' }],
    ['another port on this host', { origin: 'https://127.0.0.1:1', 'sec-fetch-site': 'same-site' }],
    ['plain http on this host and port', { origin: 'http://127.0.0.1:PORT' }],
    ['Origin null (a data: page)', { origin: 'null', 'sec-fetch-site': 'cross-site' }],
    ['the right Origin with Sec-Fetch-Site cross-site', { origin: 'https://127.0.0.1:PORT', 'sec-fetch-site': 'cross-site' }],
    ['a cross-site form without Origin', { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' }],
  ])('%s → 403 cross_origin, nothing reaches Ollama', async (_what, h) => {
    const headers = Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v.replace('PORT', String(env.port))]));
    const r = await env.request('alice', { path: '/api/chat', body: JSON.stringify(chat), headers: { 'content-type': 'text/plain', ...headers } });
    expect(r.status).toBe(403);
    expect(errorOf(r)).toBe('requests from web pages are not accepted');
    expect(await oneRecord()).toMatchObject({ peer: 'alice', status: 403, refusal: 'cross_origin' });
    expect(env.sim.requests).toEqual([]);
  });

  test('a link from another site (a chat app, the admin UI) opens the page: a top-level navigation to / only', async () => {
    for (const site of ['cross-site', 'same-site']) {
      const r = await env.request('alice', { path: '/', headers: { ...NAVIGATE, 'sec-fetch-site': site, referer: 'https://chat.example/' } });
      expect(r.status).toBe(200);
      expect(r.text).toBe(file('index.html'));
      expectWebHeaders(r);
    }
    expect(env.sim.requests).toEqual([]);
  });

  test.each<[string, string, Record<string, string>]>([
    ['a navigation from another site to an asset', '/_wgo/chat.js', { ...NAVIGATE, 'sec-fetch-site': 'cross-site' }],
    ['another site loading / in an iframe', '/', { ...NAVIGATE, 'sec-fetch-dest': 'iframe', 'sec-fetch-site': 'cross-site' }],
    ['another site navigating to an API path', '/api/tags', { ...NAVIGATE, 'sec-fetch-site': 'cross-site' }],
    ['an old Safari <img> on another site (no Fetch Metadata, its Referer)', '/api/tags', { accept: 'image/webp,*/*', referer: 'https://evil.example/page', 'user-agent': SAFARI_15 }],
  ])('%s → 403 JSON, nothing reaches Ollama', async (_what, path, headers) => {
    const r = await env.request('alice', { path, headers });
    expect(r.status).toBe(403);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(errorOf(r)).toBe('requests from web pages are not accepted');
    expect(env.sim.requests).toEqual([]);
  });

  test("answers from Ollama and the guard's refusals are not for other sites to embed (nosniff, CORP same-origin)", async () => {
    const tags = await env.request('alice', { path: '/api/tags' });
    expect(tags.status).toBe(200);
    const refused = await env.request('alice', { path: '/api/pull', body: { model: 'llama3.2' } });
    expect(refused.status).toBe(403);
    for (const r of [tags, refused]) {
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['cross-origin-resource-policy']).toBe('same-origin');
    }
  });
});

describe('asset paths', () => {
  test.each([
    '/_wgo', '/_wgo/', '/_wgo/index.html', '/_wgo/help.html', '/_wgo/Chat.js', '/_wgo/chat.js/', '/_wgo//chat.js',
    '/_wgo/chat.js?v=1', '/_wgo/chat.js;x', '/_wgo/../api/pull', '/_wgo/%2e%2e/api/pull', '/_wgo/..%2fapi%2fpull',
    '/_wgo/../../etc/passwd', '/_wgo/../web/chat/chat.js', '/_wgo/%2fetc%2fpasswd', '/_wgo/\\..\\chat.js',
  ])('%s → 404 from the guard, nothing read from disk, nothing forwarded', async (path) => {
    const r = await env.request('alice', { path, headers: NAVIGATE });
    expect(r.status).toBe(404);
    expect(r.text).toBe('not found\n');
    expect(r.headers['content-security-policy']).toBe(CHAT_CSP);
    expect(await oneRecord()).toMatchObject({ endpoint: 'web', status: 404, refusal: 'web_not_found' });
    expect(env.sim.requests).toEqual([]);
  });

  test('look-alike prefixes go to the policy and are refused there', async () => {
    for (const [path, status] of [['/%5fwgo/chat.js', 400], ['/_wgox/chat.js', 404], ['//_wgo/chat.js', 400]] as const) {
      const r = await env.request('alice', { path });
      expect(r.status).toBe(status);
      errorOf(r);
    }
    expect(env.sim.requests).toEqual([]);
  });

  test('POST to an asset → 405 with Allow, nothing forwarded', async () => {
    const r = await env.request('alice', { method: 'POST', path: '/_wgo/chat.js', body: 'x', headers: { 'content-type': 'text/plain' } });
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('GET, HEAD');
    expect(r.headers.connection).toBe('close');
    expect(env.sim.requests).toEqual([]);
  });
});

describe('loadChatSite', () => {
  test('reads the files once: changing them on disk later changes nothing served', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgo-chat-'));
    try {
      cpSync(CHAT_DIR, dir, { recursive: true });
      const site = loadChatSite(dir);
      writeFileSync(join(dir, 'chat.js'), 'changed');
      expect(site.assets.get('/_wgo/chat.js')!.body.toString()).toBe(file('chat.js'));
      expect([...site.assets.keys()].sort()).toEqual(['/_wgo/chat.css', '/_wgo/chat.js', '/_wgo/icon.svg']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing file is an error that names it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgo-chat-'));
    try {
      cpSync(CHAT_DIR, dir, { recursive: true });
      unlinkSync(join(dir, 'help.html'));
      let err: unknown;
      try {
        loadChatSite(dir);
      } catch (e) {
        err = e;
      }
      expect(isWgoError(err, 'INTERNAL')).toBe(true);
      expect((err as Error).message).toContain(join(dir, 'help.html'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
