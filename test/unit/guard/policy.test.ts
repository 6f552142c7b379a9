/**
 * Layer 4, endpoints and models: the decision is made on the path that would
 * be forwarded, tricks never reach Ollama, methods and models outside the
 * policy are refused on every surface, model lists are filtered.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { errorOf, startEnv, type GuardEnv } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

let env: GuardEnv;

beforeAll(async () => {
  env = await startEnv({
    peers: [
      { name: 'alice', address: '127.0.0.1', policy: { models: ['llama3.2'], requestsPerMinute: 100_000, burst: 1000 } },
      { name: 'bob', address: '127.0.0.2', policy: { endpoints: ['pull', 'delete', 'tags', 'version', 'generate', 'ps'], writeModels: ['llama3.2'], requestsPerMinute: 100_000, burst: 1000 } },
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

const BOB = { localAddress: '127.0.0.2' };

async function refused(who: string, method: string, path: string, body: unknown, status: number, error: string, reason: string, extra: object = {}) {
  const r = await env.request(who, { method, path, ...(body === undefined ? {} : { body }), ...extra });
  expect({ status: r.status, error: errorOf(r) }).toEqual({ status, error });
  await waitFor(() => env.records.length === 1, 2000, 'the record');
  expect(env.records[0]).toMatchObject({ peer: who, status, refusal: reason, method });
  env.records.length = 0;
  expect(env.sim.requests).toEqual([]);
  return r;
}

describe('path tricks towards pull and delete', () => {
  const pull = { model: 'evil/model' };
  const TRICKS: [string, string, number, string][] = [
    ['POST', '/api/../api/pull', 400, 'invalid request path: path has a ".." segment'],
    ['POST', '/api/./pull', 400, 'invalid request path: path has a "." segment'],
    ['POST', '/api/%70ull', 400, 'invalid request path: path contains "%"'],
    ['POST', '/api%2fpull', 400, 'invalid request path: path contains "%"'],
    ['POST', '/api/%2e%2e/api/pull', 400, 'invalid request path: path contains "%"'],
    ['POST', '//api/pull', 400, 'invalid request path: path has an empty segment ("//")'],
    ['POST', '/api//pull', 400, 'invalid request path: path has an empty segment ("//")'],
    ['POST', '/api/pull/', 400, 'invalid request path: path ends with "/"'],
    ['POST', '/api/pull;x', 400, 'invalid request path: path contains ";"'],
    ['POST', '/api/pull\\', 400, 'invalid request path: path contains "\\"'],
    ['POST', 'http://127.0.0.1/api/pull', 400, 'invalid request path: request target must be a path starting with "/"'],
    ['POST', '/API/PULL', 404, 'path "/API/PULL" not found'],
    ['POST', '/api/Pull', 404, 'path "/api/Pull" not found'],
    ['DELETE', '/api/../api/delete', 400, 'invalid request path: path has a ".." segment'],
    ['DELETE', '/api/%64elete', 400, 'invalid request path: path contains "%"'],
    ['DELETE', '//api/delete', 400, 'invalid request path: path has an empty segment ("//")'],
    ['DELETE', '/api/delete/', 400, 'invalid request path: path ends with "/"'],
    ['DELETE', '/api/delete;x', 400, 'invalid request path: path contains ";"'],
    ['DELETE', '/API/DELETE', 404, 'path "/API/DELETE" not found'],
  ];

  test.each(TRICKS)('%s %s → %d, never forwarded (even for a peer allowed to pull and delete)', async (method, path, status, error) => {
    for (const [who, extra] of [['alice', {}], ['bob', BOB]] as const) {
      await refused(who, method, path, pull, status, error, status === 400 ? 'path_not_canonical' : 'unknown_endpoint', extra);
    }
  });

  test('pull and delete under the default policy → 403', async () => {
    await refused('alice', 'POST', '/api/pull', pull, 403, 'endpoint "pull" is not allowed for this peer', 'endpoint_denied');
    await refused('alice', 'DELETE', '/api/delete', { model: 'llama3.2' }, 403, 'endpoint "delete" is not allowed for this peer', 'endpoint_denied');
    await refused('alice', 'POST', '/api/create', { model: 'x' }, 403, 'endpoint "create" is not allowed for this peer', 'endpoint_denied');
    await refused('alice', 'POST', '/api/copy', { source: 'llama3.2', destination: 'x' }, 403, 'endpoint "copy" is not allowed for this peer', 'endpoint_denied');
  });

  test("pull allowed by a peer's policy reaches Ollama, on the canonical path, streaming its progress", async () => {
    const r = await env.request('bob', { path: '/api/pull', body: { model: 'llama3.2' }, ...BOB });
    expect(r.status).toBe(200);
    expect(r.text.trim().split('\n').map((l) => JSON.parse(l).status).at(-1)).toBe('success');
    expect(env.sim.requests.map((q) => [q.method, q.path, q.body])).toEqual([['POST', '/api/pull', { model: 'llama3.2' }]]);
    // bob's policy has no chat: refused, not forwarded
    env.sim.clear();
    await waitFor(() => env.records.length === 1, 2000, 'the record');
    env.records.length = 0;
    await refused('bob', 'POST', '/api/chat', { model: 'llama3.2', messages: [] }, 403, 'endpoint "chat" is not allowed for this peer', 'endpoint_denied', BOB);
  });

  test('pull and delete of a model outside writeModels → 403 write_denied, never forwarded', async () => {
    const why = (m: string) => `model "${m}" may not be created, overwritten, deleted, pulled or pushed by this peer (policy field writeModels)`;
    await refused('bob', 'POST', '/api/pull', { model: 'qwen2.5:0.5b' }, 403, why('qwen2.5:0.5b'), 'write_denied', BOB);
    await refused('bob', 'POST', '/api/pull', { model: 'evil.io/library/llama3.2' }, 403, why('evil.io/library/llama3.2'), 'write_denied', BOB);
    await refused('bob', 'DELETE', '/api/delete', { name: 'llama3.2:1b' }, 403, why('llama3.2:1b'), 'write_denied', BOB);
  });

  test('the query string is not part of the decision, and is forwarded as nothing', async () => {
    const r = await env.request('alice', { path: '/api/version?x=/api/pull' });
    expect(r.status).toBe(200);
    expect(env.sim.requests.map((q) => q.path)).toEqual(['/api/version']);
  });
});

describe('requests from web pages', () => {
  test.each<[string, Record<string, string>]>([
    ['an Origin header', { origin: 'https://evil.example' }],
    ['a null Origin', { origin: 'null' }],
    ['Sec-Fetch-Site cross-site', { 'sec-fetch-site': 'cross-site' }],
    ['Sec-Fetch-Site same-site', { 'sec-fetch-site': 'same-site' }],
  ])('%s → 403: a browser holding the .p12 cannot be driven by another site', async (_what, headers) => {
    await refused('alice', 'POST', '/api/generate', { model: 'llama3.2', prompt: 'x' }, 403, 'requests from web pages are not accepted', 'cross_origin', {
      headers: { ...headers, 'content-type': 'text/plain' },
    });
  });
});

describe('methods', () => {
  test.each([
    ['GET', '/api/chat', 'POST'],
    ['PUT', '/api/generate', 'POST'],
    ['POST', '/api/tags', 'GET, HEAD'],
    ['DELETE', '/v1/models', 'GET, HEAD'],
    ['GET', '/api/delete', 'DELETE'],
  ])('%s %s → 405 with Allow: %s', async (method, path, allow) => {
    const r = await refused('alice', method, path, undefined, 405, `method ${method} is not allowed for ${path}`, 'method_not_allowed');
    expect(r.headers.allow).toBe(allow);
  });
});

describe('models outside the allowlist', () => {
  const chat = (model: string) => ({ model, messages: [{ role: 'user', content: 'hi' }] });
  test.each([
    ['/api/chat', chat('qwen2.5:0.5b')],
    ['/api/generate', { model: 'qwen2.5:0.5b', prompt: 'hi' }],
    ['/api/embed', { model: 'nomic-embed-text', input: 'hi' }],
    ['/v1/chat/completions', chat('qwen2.5:0.5b')],
    ['/v1/completions', { model: 'qwen2.5:0.5b', prompt: 'hi' }],
    ['/v1/embeddings', { model: 'nomic-embed-text', input: 'hi' }],
    ['/api/show', { model: 'qwen2.5:0.5b' }],
    ['/api/show', { name: 'qwen2.5:0.5b' }],
    ['/api/chat', chat('llama3.2:1b')],
    ['/api/chat', chat('registry.ollama.ai/library/qwen2.5:0.5b')],
  ])('POST %s %j → 403', async (path, body) => {
    const name = (body as { model?: string; name?: string }).model ?? (body as { name: string }).name;
    await refused('alice', 'POST', path, body, 403, `model "${name}" is not allowed for this peer`, 'model_denied');
  });

  test('GET /v1/models/<denied> → 404 as if it did not exist; an allowed one is served', async () => {
    await refused('alice', 'GET', '/v1/models/qwen2.5:0.5b', undefined, 404, 'model "qwen2.5:0.5b" not found', 'model_denied');
    const ok = await env.request('alice', { path: '/v1/models/llama3.2' });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.text)).toMatchObject({ id: 'llama3.2', object: 'model' });
    expect(env.sim.requests.map((q) => q.path)).toEqual(['/v1/models/llama3.2']);
  });

  test('the allowed model is served on native and /v1 (the control)', async () => {
    for (const [path, body] of [['/api/chat', { ...chat('llama3.2'), stream: false }], ['/v1/chat/completions', chat('llama3.2:latest')]] as const) {
      const r = await env.request('alice', { path, body });
      expect(r.status).toBe(200);
    }
    expect(env.sim.requests.map((q) => q.path)).toEqual(['/api/chat', '/v1/chat/completions']);
  });

  test('a body that names the model twice by case ("model" and "MODEL") is refused, not forwarded', async () => {
    await refused('alice', 'POST', '/api/chat', '{"model":"llama3.2","MODEL":"qwen2.5:0.5b","messages":[]}', 400, 'field "MODEL" is not accepted, use "model"', 'ambiguous_field');
  });
});

describe('model lists', () => {
  test('/api/tags and /v1/models show only the models the peer may use; an unrestricted peer sees all', async () => {
    const tags = await env.request('alice', { path: '/api/tags' });
    expect(tags.status).toBe(200);
    expect((JSON.parse(tags.text) as { models: { name: string }[] }).models.map((m) => m.name)).toEqual(['llama3.2:latest']);
    expect(Number(tags.headers['content-length'])).toBe(Buffer.byteLength(tags.text));
    const v1 = await env.request('alice', { path: '/v1/models' });
    expect(v1.status).toBe(200);
    expect(JSON.parse(v1.text)).toMatchObject({ object: 'list', data: [{ id: 'llama3.2:latest' }] });
    expect((JSON.parse(v1.text) as { data: unknown[] }).data).toHaveLength(1);
    expect(env.sim.requests.map((q) => q.path)).toEqual(['/api/tags', '/v1/models']);

    const all = await env.request('bob', { path: '/api/tags', ...BOB });
    expect((JSON.parse(all.text) as { models: { name: string }[] }).models.map((m) => m.name).sort()).toEqual(['llama3.2:latest', 'nomic-embed-text:latest', 'qwen2.5:0.5b']);
  });

  test('/api/ps is filtered the same way', async () => {
    await env.request('alice', { path: '/api/chat', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: false } });
    // an empty prompt loads the model
    expect((await env.request('bob', { path: '/api/generate', body: { model: 'qwen2.5:0.5b', prompt: '' }, ...BOB })).status).toBe(200);
    const names = (r: { text: string }) => (JSON.parse(r.text) as { models: { name: string }[] }).models.map((m) => m.name).sort();
    const ps = await env.request('alice', { path: '/api/ps' });
    expect(ps.status).toBe(200);
    expect(names(ps)).toEqual(['llama3.2:latest']);
    expect(names(await env.request('bob', { path: '/api/ps', ...BOB }))).toEqual(['llama3.2:latest', 'qwen2.5:0.5b']);
  });
});
