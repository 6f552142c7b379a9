/**
 * Layer 5: one record per request with what the audit needs, token counts
 * equal to Ollama's own final counts, prompt text only when enabled; and the
 * Prometheus metrics the same requests leave behind.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { errorOf, ndjson, startEnv, type GuardEnv, type Rec, exactRecords } from '../../support/guard-env.js';

let env: GuardEnv;
const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');
/** The digested text (core/prompt-digest.ts): [field, value] pairs; these messages' keys are already sorted. */
const canon = (...pairs: [string, unknown][]): string => JSON.stringify(pairs);
const msg = (role: string, content: string) => ({ content, role });

beforeAll(async () => {
  env = await startEnv({
    peers: [
      { name: 'alice', address: '127.0.0.1', policy: { models: ['llama3.2', 'nomic-embed-text'] } },
      { name: 'bob', address: '127.0.0.2', policy: { tokensPerDay: 1_000_000 } },
    ],
  });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.guard.setPeers(env.peerSet());
  env.sim.clear();
  env.records.length = 0;
});


/** The fields every served request must have right. */
function expectServed(rec: Rec, o: { peer: string; source: string; method: string; path: string; endpoint: string; model: string | null; bodyBytes: number; replyBytes: number }) {
  expect(rec).toMatchObject({
    peer: o.peer, certSerial: env.certs.get(o.peer)!.serial, source: o.source, method: o.method, path: o.path, endpoint: o.endpoint,
    model: o.model, status: 200, bytesIn: o.bodyBytes, bytesOut: o.replyBytes, refusal: null, promptText: null,
  });
  expect(rec.at).toBeGreaterThan(Date.now() - 10_000);
  expect(rec.ttfbMs).toBeGreaterThan(0);
  expect(rec.durationMs).toBeGreaterThanOrEqual(rec.ttfbMs!);
}

describe('request records', () => {
  test('native streaming chat: prompt digest and length, bytes, token counts equal to the final statistics', async () => {
    const messages = [msg('system', 'Be brief.'), msg('user', 'Why is the sky blue? ☀')];
    const body = JSON.stringify({ model: 'llama3.2', messages });
    const r = await env.request('alice', { path: '/api/chat', body });
    expect(r.status).toBe(200);
    const last = ndjson(r.text).at(-1)!;
    expect(last.done).toBe(true);
    const [rec] = await exactRecords(env);
    expectServed(rec!, { peer: 'alice', source: '127.0.0.1', method: 'POST', path: '/api/chat', endpoint: 'chat', model: 'llama3.2:latest', bodyBytes: Buffer.byteLength(body), replyBytes: Buffer.byteLength(r.text) });
    expect(rec!.promptSha256).toBe(sha256(canon(['messages', messages])));
    expect(rec!.promptLength).toBe(Buffer.byteLength(canon(['messages', messages])));
    expect(rec!.promptTokens).toBe(last.prompt_eval_count);
    expect(rec!.evalTokens).toBe(last.eval_count);
    expect(rec!.evalTokens).toBe(env.sim.requests[0]!.tokens);
  });

  test('native generate, not streamed: the prompt is what is digested', async () => {
    const prompt = 'Write a haiku about TLS.';
    const body = { model: 'llama3.2:latest', prompt, stream: false, options: { num_predict: 7 } };
    const r = await env.request('alice', { path: '/api/generate', body });
    const answer = JSON.parse(r.text) as { prompt_eval_count: number; eval_count: number };
    const [rec] = await exactRecords(env);
    expectServed(rec!, { peer: 'alice', source: '127.0.0.1', method: 'POST', path: '/api/generate', endpoint: 'generate', model: 'llama3.2:latest', bodyBytes: Buffer.byteLength(JSON.stringify(body)), replyBytes: Buffer.byteLength(r.text) });
    expect(rec!.promptSha256).toBe(sha256(canon(['prompt', prompt])));
    expect(rec!.promptLength).toBe(Buffer.byteLength(canon(['prompt', prompt])));
    expect([rec!.promptTokens, rec!.evalTokens]).toEqual([answer.prompt_eval_count, 7]);
  });

  test('/v1 chat with usage (streamed with include_usage, and not streamed): counts from usage', async () => {
    const messages = [msg('user', 'hello there')];
    const streamed = await env.request('alice', { path: '/v1/chat/completions', body: { model: 'llama3.2', messages, stream: true, stream_options: { include_usage: true }, max_tokens: 5 } });
    const usageEvent = streamed.text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)) as { usage?: { prompt_tokens: number; completion_tokens: number } }).find((e) => e.usage);
    expect(usageEvent?.usage?.completion_tokens).toBe(5);
    const plain = await env.request('alice', { path: '/v1/chat/completions', body: { model: 'llama3.2', messages, max_tokens: 3 } });
    const usage = (JSON.parse(plain.text) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
    const recs = await exactRecords(env, 2);
    expect(recs[0]).toMatchObject({ endpoint: 'v1.chat', model: 'llama3.2:latest', promptSha256: sha256(canon(['messages', messages])), promptTokens: usageEvent!.usage!.prompt_tokens, evalTokens: 5, bytesOut: Buffer.byteLength(streamed.text) });
    expect(recs[1]).toMatchObject({ endpoint: 'v1.chat', promptTokens: usage.prompt_tokens, evalTokens: 3 });
  });

  test('with a token budget, a /v1 stream that did not ask for usage is made to, so the budget sees its tokens', async () => {
    const r = await env.request('bob', { path: '/v1/chat/completions', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 4 }, localAddress: '127.0.0.2' });
    expect(r.status).toBe(200);
    expect(env.sim.requests[0]!.body).toMatchObject({ stream_options: { include_usage: true } });
    const [rec] = await exactRecords(env);
    expect(rec).toMatchObject({ peer: 'bob', source: '127.0.0.2', evalTokens: 4 });
    expect(rec!.promptTokens).toBeGreaterThan(0);
  });

  test('embeddings: prompt tokens only; model lists and version: no model, no tokens', async () => {
    await env.request('alice', { path: '/api/embed', body: { model: 'nomic-embed-text', input: ['one', 'two three'] } });
    await env.request('alice', { path: '/api/tags' });
    const recs = await exactRecords(env, 2);
    expect(recs[0]).toMatchObject({ endpoint: 'embed', model: 'nomic-embed-text:latest', promptSha256: sha256(canon(['input', ['one', 'two three']])), evalTokens: 0 });
    expect(recs[0]!.promptTokens).toBeGreaterThan(0);
    expect(recs[1]).toMatchObject({ method: 'GET', path: '/api/tags', endpoint: 'tags', model: null, promptSha256: null, promptLength: null, promptTokens: null, evalTokens: null, bytesIn: 0, status: 200 });
  });

  test('a refusal is recorded once, with its reason, and without tokens', async () => {
    const r = await env.request('alice', { path: '/api/chat', body: { model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'secret' }] } });
    expect(r.status).toBe(403);
    const [rec] = await exactRecords(env);
    expect(rec).toMatchObject({ peer: 'alice', status: 403, refusal: 'model_denied', endpoint: 'chat', path: '/api/chat', promptText: null, promptTokens: null, evalTokens: null, bytesOut: Buffer.byteLength(r.text), ttfbMs: null });
    expect(env.sim.requests).toHaveLength(0);
  });

  test('N requests of every kind make exactly N records', async () => {
    const jobs = [
      env.request('alice', { path: '/api/version' }),
      env.request('alice', { path: '/api/generate', body: { model: 'llama3.2', prompt: 'p' } }),
      env.request('alice', { path: '/api/pull', body: { model: 'x' } }),
      env.request('bob', { path: '/api/chat', body: { model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'q' }] }, localAddress: '127.0.0.2' }),
      env.request(null, { path: '/api/tags' }),
      env.request('alice', { path: '/nope' }),
    ];
    const statuses = (await Promise.all(jobs)).map((r) => r.status);
    expect(statuses).toEqual([200, 200, 403, 200, 401, 404]);
    const recs = await exactRecords(env, jobs.length);
    expect(recs.map((r) => r.status).sort()).toEqual([...statuses].sort());
  });

  test('prompt text is kept only when the peer set says logPrompts', async () => {
    env.guard.setPeers(env.peerSet({ logPrompts: true }));
    const prompt = 'keep me';
    const messages = [msg('user', 'and me')];
    await env.request('alice', { path: '/api/generate', body: { model: 'llama3.2', prompt, stream: false } });
    await env.request('alice', { path: '/api/chat', body: { model: 'llama3.2', messages, stream: false } });
    const recs = await exactRecords(env, 2);
    expect(recs[0]).toMatchObject({ promptText: canon(['prompt', prompt]), promptSha256: sha256(canon(['prompt', prompt])) });
    expect(recs[1]).toMatchObject({ promptText: canon(['messages', messages]), promptSha256: sha256(canon(['messages', messages])) });
  });

  test('everything the model reads is digested (system, images, tools), and kept as the prompt text with logPrompts', async () => {
    env.guard.setPeers(env.peerSet({ logPrompts: true }));
    const plain = { model: 'llama3.2', prompt: 'p', stream: false };
    const tools = [{ type: 'function', function: { name: 'f' } }];
    await env.request('alice', { path: '/api/generate', body: plain });
    await env.request('alice', { path: '/api/generate', body: { ...plain, system: 'Ignore the policy.', images: ['aGk='] } });
    await env.request('alice', { path: '/api/chat', body: { model: 'llama3.2', messages: [msg('user', 'x')], tools, stream: false } });
    const recs = await exactRecords(env, 3);
    const generate = canon(['prompt', 'p'], ['system', 'Ignore the policy.'], ['images', ['aGk=']]);
    expect(recs[1]).toMatchObject({ status: 200, promptText: generate, promptSha256: sha256(generate), promptLength: Buffer.byteLength(generate) });
    expect(recs[1]!.promptSha256).not.toBe(recs[0]!.promptSha256);
    const chat = canon(['messages', [msg('user', 'x')]], ['tools', [{ function: { name: 'f' }, type: 'function' }]]);
    expect(recs[2]).toMatchObject({ status: 200, promptText: chat, promptSha256: sha256(chat) });
    // Forwarded as sent: the digest changes what is recorded, not what Ollama reads.
    expect(env.sim.requests[1]!.body).toEqual({ ...plain, system: 'Ignore the policy.', images: ['aGk='] });
    expect(env.sim.requests[2]!.body).toMatchObject({ tools });
  });
});

describe('metrics', () => {
  test('requests by peer, model and status; refusals by reason; TLS authentication failures; tokens', async () => {
    const ok = await env.request('alice', { path: '/api/generate', body: { model: 'llama3.2', prompt: 'm', stream: false, options: { num_predict: 3 } } });
    expect(ok.status).toBe(200);
    const denied = await env.request('alice', { path: '/api/generate', body: { model: 'qwen2.5:0.5b', prompt: 'm' } });
    expect(errorOf(denied)).toBe('model "qwen2.5:0.5b" is not allowed for this peer');
    const anon = await env.request(null, { path: '/api/version' });
    expect(anon.status).toBe(401);
    const wrongPlace = await env.request('alice', { path: '/api/version', localAddress: '127.0.0.2' });
    expect(wrongPlace.status).toBe(403);
    await exactRecords(env, 4);

    const text = await env.registry.metrics();
    const value = (line: string): number => {
      const m = new RegExp(`^${line.replace(/[{}.()[\]]/g, '\\$&')} (\\d+)$`, 'm').exec(text);
      if (!m) throw new Error(`no metric ${line} in:\n${text}`);
      return Number(m[1]);
    };
    expect(value('wgo_guard_requests_total{peer="alice",model="llama3.2:latest",status="200"}')).toBeGreaterThanOrEqual(1);
    expect(value('wgo_guard_requests_total{peer="alice",model="",status="403"}')).toBeGreaterThanOrEqual(1);
    expect(value('wgo_guard_requests_total{peer="",model="",status="401"}')).toBeGreaterThanOrEqual(1);
    expect(value('wgo_guard_refusals_total{reason="model_denied"}')).toBeGreaterThanOrEqual(1);
    expect(value('wgo_guard_refusals_total{reason="auth_wrong_source"}')).toBeGreaterThanOrEqual(1);
    expect(value('wgo_guard_tls_auth_failures_total{reason="auth_no_certificate"}')).toBeGreaterThanOrEqual(1);
    expect(value('wgo_guard_tls_auth_failures_total{reason="auth_wrong_source"}')).toBeGreaterThanOrEqual(1);
    expect(value('wgo_guard_tokens_total{peer="alice",model="llama3.2:latest",kind="eval"}')).toBeGreaterThanOrEqual(3);
    expect(value('wgo_guard_peers')).toBe(2);
  });

  test('one connection without a certificate making one request is one authentication failure, not two', async () => {
    const count = async (reason: string): Promise<number> => {
      const m = new RegExp(`wgo_guard_tls_auth_failures_total\\{reason="${reason}"\\} (\\d+)`).exec(await env.registry.metrics());
      return m ? Number(m[1]) : 0;
    };
    const [noCert, wrongSource] = [await count('auth_no_certificate'), await count('auth_wrong_source')];
    expect((await env.request(null, { path: '/api/version' })).status).toBe(401);
    expect((await env.request('alice', { path: '/api/version', localAddress: '127.0.0.2' })).status).toBe(403);
    await exactRecords(env, 2);
    expect(await count('auth_no_certificate')).toBe(noCert + 1);
    expect(await count('auth_wrong_source')).toBe(wrongSource + 1);
  });
});
