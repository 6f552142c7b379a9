import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { matchEndpoint, type EndpointDef } from '../../../../src/core/ollama-api.js';
import {
  DEFAULT_POLICY,
  decideBody,
  decideHead,
  filterModelList,
  keepAliveSeconds,
  mergePolicy,
  modelAllowed,
  normaliseModel,
  policyOverrideSchema,
  policySchema,
  type Policy,
} from '../../../../src/core/policy.js';

const policy = (o: Partial<Policy> = {}): Policy => mergePolicy(DEFAULT_POLICY, o);
const LIMIT = 1_048_576;

function endpoint(path: string, method = 'POST'): { endpoint: EndpointDef; pathModel?: string } {
  const m = matchEndpoint(path, method);
  if (m.kind !== 'ok') throw new Error(`${method} ${path} does not match`);
  return m;
}
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('policy schema', () => {
  test('an empty object is the default policy', () => {
    // Written out: a changed default is a decision, and it shows here.
    const defaults = {
      endpoints: ['generate', 'chat', 'embed', 'embeddings', 'tags', 'show', 'ps', 'version', 'v1.chat', 'v1.completions', 'v1.embeddings', 'v1.models'],
      models: null, writeModels: [], requestsPerMinute: 60, burst: 20, maxStreams: 4, tokensPerDay: null, maxKeepAliveSec: null,
      maxNumCtx: null, maxTokensPerRequest: null,
      options: ['num_keep', 'seed', 'num_predict', 'top_k', 'top_p', 'min_p', 'typical_p', 'repeat_last_n', 'temperature', 'repeat_penalty',
        'presence_penalty', 'frequency_penalty', 'stop', 'mirostat', 'mirostat_tau', 'mirostat_eta', 'tfs_z', 'penalize_newline', 'num_ctx'],
      optionLimits: {}, apiTokens: false,
    };
    expect(policySchema.parse({})).toEqual(defaults);
    expect(DEFAULT_POLICY).toEqual(defaults);
  });

  test('a full policy round-trips', () => {
    const p: Policy = {
      endpoints: ['chat', 'pull'], models: ['llama3.2', 'qwen2.5:*', 'hf.co/user/model:q4_k_m'], writeModels: ['alice/*'], requestsPerMinute: 10, burst: 2,
      maxStreams: 1, tokensPerDay: 100_000, maxKeepAliveSec: 300, maxNumCtx: 8192, maxTokensPerRequest: 2048, apiTokens: true,
      options: ['temperature', 'num_gpu'], optionLimits: { num_gpu: 20 },
    };
    expect(policySchema.parse(p)).toEqual(p);
  });

  test.each<[string, unknown]>([
    ['an unknown field', { endpoint: ['chat'] }],
    ['an unknown endpoint', { endpoints: ['chat', 'admin'] }],
    ['a bad model pattern', { models: ['llama 3'] }],
    ['a wildcard name', { models: ['*'] }],
    ['a model with a digest', { models: ['llama3.2@sha256:abc'] }],
    ['too many models', { models: Array.from({ length: 201 }, (_, i) => `m${i}`) }],
    ['a rate of zero', { requestsPerMinute: 0 }],
    ['a rate over 100000', { requestsPerMinute: 100_001 }],
    ['a fractional burst', { burst: 1.5 }],
    ['zero streams', { maxStreams: 0 }],
    ['a negative keep-alive clamp', { maxKeepAliveSec: -1 }],
  ])('refuses %s', (_, input) => {
    expect(policySchema.safeParse(input).success).toBe(false);
  });

  test('an override is partial, fills in nothing, and is strict', () => {
    expect(policyOverrideSchema.parse({ maxStreams: 2 })).toEqual({ maxStreams: 2 });
    expect(policyOverrideSchema.safeParse({ maxstreams: 2 }).success).toBe(false);
  });

  test('mergePolicy: set fields win, null means "no limit", undefined keeps the base', () => {
    const base = policy({ models: ['a'], tokensPerDay: 1000 });
    const merged = mergePolicy(base, { models: null, tokensPerDay: undefined, burst: 5 });
    expect(merged).toEqual({ ...base, models: null, burst: 5 });
    merged.endpoints.push('pull');
    expect(base.endpoints).not.toContain('pull');
  });
});

describe('model names', () => {
  test.each([
    ['llama3.2', 'llama3.2:latest'],
    ['Llama3.2:3B', 'llama3.2:3b'],
    ['library/llama3.2', 'llama3.2:latest'],
    ['registry.ollama.ai/library/llama3.2:1b', 'llama3.2:1b'],
    ['registry.ollama.ai/user/model', 'user/model:latest'],
    ['hf.co/Bartowski/Model-GGUF:Q4_K_M', 'hf.co/bartowski/model-gguf:q4_k_m'],
    ['localhost:5000/ns/model', 'localhost:5000/ns/model:latest'],
  ])('normaliseModel(%j) = %j', (input, out) => {
    expect(normaliseModel(input)).toBe(out);
  });

  const p = policy({ models: ['llama3.2', 'qwen2.5:*', 'phi3:mini', 'user/custom'] });
  test.each<[string, boolean]>([
    ['llama3.2', true],
    ['llama3.2:latest', true],
    ['LLAMA3.2', true],
    ['registry.ollama.ai/library/llama3.2:latest', true],
    ['llama3.2:3b', false],
    ['qwen2.5:0.5b', true],
    ['qwen2.5', true],
    ['qwen2.5-coder:7b', false],
    ['phi3:mini', true],
    ['phi3', false],
    ['user/custom', true],
    ['other/custom', false],
    ['custom', false],
    ['llama3.2:latest@sha256:' + 'a'.repeat(64), false],
    [' llama3.2', false],
    ['', false],
  ])('allowlist: %j → %s', (model, ok) => {
    expect(modelAllowed(p, model)).toBe(ok);
  });

  test('without an allowlist every model is allowed', () => {
    expect(modelAllowed(DEFAULT_POLICY, 'anything:at-all')).toBe(true);
  });
});

describe('filterModelList', () => {
  const p = policy({ models: ['llama3.2', 'qwen2.5:*'] });
  test('/api/tags keeps allowed entries and everything else in the body', () => {
    const body = {
      models: [
        { name: 'llama3.2:latest', model: 'llama3.2:latest', size: 1 },
        { name: 'mistral:7b', model: 'mistral:7b' },
        { name: 'qwen2.5:0.5b', model: 'qwen2.5:0.5b' },
        { size: 3 },
        'junk',
      ],
      extra: true,
    };
    expect(filterModelList('tags', body, p)).toEqual({
      models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest', size: 1 }, { name: 'qwen2.5:0.5b', model: 'qwen2.5:0.5b' }],
      extra: true,
    });
  });

  test('/v1/models keeps allowed ids', () => {
    const body = { object: 'list', data: [{ id: 'llama3.2:latest', object: 'model' }, { id: 'mistral:latest', object: 'model' }] };
    expect(filterModelList('v1.models', body, p)).toEqual({ object: 'list', data: [{ id: 'llama3.2:latest', object: 'model' }] });
  });

  test.each<[string, unknown]>([
    ['null', null],
    ['a string', 'hello'],
    ['an error body', { error: 'boom' }],
    ['models not a list', { models: 'x' }],
  ])('%s is returned unchanged', (_, body) => {
    expect(filterModelList('tags', body, p)).toBe(body);
  });

  test('nothing is filtered without an allowlist', () => {
    const body = { models: [{ name: 'x' }] };
    expect(filterModelList('tags', body, DEFAULT_POLICY)).toBe(body);
  });
});

describe('decideHead', () => {
  const head = (method: string, rawUrl: string, headers: Record<string, string | string[] | undefined> = {}, p = DEFAULT_POLICY) =>
    decideHead({ method, rawUrl, headers, policy: p, maxBodyBytes: LIMIT });

  test('an ordinary chat request passes', () => {
    const r = head('POST', '/api/chat', { 'content-type': 'application/json', 'content-length': '40' });
    expect(r).toMatchObject({ ok: true, path: '/api/chat', endpoint: { name: 'chat' } });
  });

  test.each([
    '/api/../api/pull', '/api/./pull', '/api/%70ull', '/api/pull%2f', '/api%2fpull', '/api/%2e%2e/pull', '//api/pull',
    '/api//pull', '/api/pull/', '/api/pull;x', '/api/pull\\', '/api/pull%00', 'http://x/api/pull', '*',
  ])('%j: 400 path_not_canonical', (url) => {
    expect(head('POST', url)).toMatchObject({ ok: false, refusal: { status: 400, reason: 'path_not_canonical' } });
  });

  test.each<[string, Record<string, string | string[]>]>([
    ['Upgrade: websocket with Connection: Upgrade', { upgrade: 'websocket', connection: 'Upgrade' }],
    ['Upgrade alone', { upgrade: 'h2c' }],
    ['Connection naming upgrade alone', { connection: 'keep-alive, UPGRADE' }],
    ['two Upgrade headers', { upgrade: ['websocket', 'h2c'] }],
  ])('%s: 400 upgrade_refused (Ollama switches to no other protocol)', (_what, headers) => {
    expect(head('POST', '/api/generate', headers)).toMatchObject({ ok: false, refusal: { status: 400, reason: 'upgrade_refused' } });
  });

  test.each(['x-forwarded-for', 'keep-alive, content-type', 'close, TE', 'proxy-authorization'])('Connection: %s: 400 connection_option_refused', (connection) => {
    const r = head('POST', '/api/generate', { connection });
    expect(r).toMatchObject({ ok: false, refusal: { status: 400, reason: 'connection_option_refused' } });
  });

  test.each(['keep-alive', 'close', 'Keep-Alive', ' close , keep-alive ', ''])('Connection: %j passes', (connection) => {
    expect(head('POST', '/api/generate', { connection, upgrade: '' })).toMatchObject({ ok: true });
  });

  test('/API/PULL is canonical but unknown: 404', () => {
    expect(head('POST', '/API/PULL')).toMatchObject({ ok: false, refusal: { status: 404, reason: 'unknown_endpoint' } });
  });

  test('a wrong method: 405 with Allow', () => {
    expect(head('GET', '/api/chat')).toEqual({
      ok: false,
      refusal: { status: 405, reason: 'method_not_allowed', error: 'method GET is not allowed for /api/chat', allow: ['POST'] },
    });
  });

  test.each(['/api/pull', '/api/push', '/api/create', '/api/copy'])('%s is denied by default: 403', (url) => {
    const name = url.slice(5);
    expect(head('POST', url)).toEqual({
      ok: false,
      refusal: { status: 403, reason: 'endpoint_denied', error: `endpoint "${name}" is not allowed for this peer` },
    });
  });

  test('delete and blobs are denied by default too; a policy can allow them', () => {
    const blob = '/api/blobs/sha256:' + 'a'.repeat(64);
    expect(head('DELETE', '/api/delete')).toMatchObject({ ok: false, refusal: { reason: 'endpoint_denied' } });
    expect(head('HEAD', blob)).toMatchObject({ ok: false, refusal: { reason: 'endpoint_denied' } });
    const p = policy({ endpoints: ['pull', 'blobs'] });
    expect(head('POST', '/api/pull', {}, p)).toMatchObject({ ok: true });
    expect(head('POST', '/api/chat', {}, p)).toMatchObject({ ok: false, refusal: { reason: 'endpoint_denied' } });
    // Blob uploads are large; their size is not limited here.
    expect(head('POST', blob, { 'content-length': String(10 * LIMIT), 'content-type': 'application/octet-stream' }, p)).toMatchObject({ ok: true });
  });

  test("the root probe (GET / and HEAD /: \"Ollama is running\") is answered for every peer, whatever its endpoint list", () => {
    const p = policy({ endpoints: ['chat'] });
    expect(head('GET', '/', {}, p)).toMatchObject({ ok: true, path: '/' });
    expect(head('HEAD', '/', {}, p)).toMatchObject({ ok: true, path: '/' });
    expect(head('GET', '/api/version', {}, p)).toMatchObject({ ok: false, refusal: { reason: 'endpoint_denied' } });
    expect(head('POST', '/', {}, p)).toMatchObject({ ok: false, refusal: { reason: 'method_not_allowed' } });
  });

  test('the path model of /v1/models/:model is passed on', () => {
    expect(head('GET', '/v1/models/llama3.2')).toMatchObject({ ok: true, pathModel: 'llama3.2' });
  });

  test.each<[string, Record<string, string | string[]>, number | null, string?]>([
    ['no content type', {}, null],
    ['application/json', { 'content-type': 'application/json' }, null],
    ['json with charset', { 'content-type': 'Application/JSON; charset=utf-8' }, null],
    ["curl's -d default", { 'content-type': 'application/x-www-form-urlencoded' }, null],
    ['text/plain', { 'content-type': 'text/plain;charset=UTF-8' }, null],
    ['multipart', { 'content-type': 'multipart/form-data; boundary=x' }, 415, 'unsupported_media_type'],
    ['xml', { 'content-type': 'application/xml' }, 415, 'unsupported_media_type'],
    ['gzip body', { 'content-encoding': 'gzip' }, 415, 'unsupported_media_type'],
    ['identity encoding', { 'content-encoding': 'identity' }, null],
    ['two content types', { 'content-type': ['application/json', 'text/xml'] }, 400, 'bad_header'],
    ['at the limit', { 'content-length': String(LIMIT) }, null],
    ['over the limit', { 'content-length': String(LIMIT + 1) }, 413, 'body_too_large'],
    ['length and chunked', { 'content-length': '10', 'transfer-encoding': 'chunked' }, 400, 'bad_framing'],
    ['chunked', { 'transfer-encoding': 'chunked' }, null],
    ['gzip transfer coding', { 'transfer-encoding': 'gzip, chunked' }, 400, 'bad_framing'],
    ['bad length', { 'content-length': '1e3' }, 400, 'bad_framing'],
    ['Content-Length in another case', { 'Content-Length': String(LIMIT + 1) }, 413, 'body_too_large'],
  ])('%s', (_, headers, status, reason) => {
    const r = head('POST', '/api/generate', headers);
    if (status === null) expect(r.ok).toBe(true);
    else expect(r).toMatchObject({ ok: false, refusal: { status, reason } });
  });

  test('the 413 message names the limit', () => {
    const r = head('POST', '/api/chat', { 'content-length': '2000000' });
    expect(r).toMatchObject({ refusal: { error: 'request body too large (limit 1048576 bytes)' } });
  });
});

describe('decideBody', () => {
  const body = (path: string, b: unknown, o: Partial<Policy> = {}) => {
    const e = endpoint(path);
    return decideBody({ ...e, body: Buffer.isBuffer(b) ? b : json(b), policy: policy(o) });
  };
  const only = { models: ['llama3.2', 'qwen2.5:*'], writeModels: ['qwen2.5:*'] };

  test.each<[string, string, unknown, number | null, string?]>([
    ['native: allowed', '/api/chat', { model: 'llama3.2', messages: [] }, null],
    ['native: other tag', '/api/chat', { model: 'llama3.2:70b', messages: [] }, 403, 'model_denied'],
    ['native: missing model', '/api/generate', { prompt: 'hi' }, 400, 'model_missing'],
    ['native: model not a string', '/api/generate', { model: 1 }, 400, 'bad_model'],
    ['native: name is not read by generate', '/api/generate', { name: 'llama3.2' }, 400, 'model_missing'],
    ['v1: allowed', '/v1/chat/completions', { model: 'qwen2.5:7b', messages: [] }, null],
    ['v1: denied', '/v1/completions', { model: 'mistral', prompt: 'x' }, 403, 'model_denied'],
    ['v1 embeddings: denied', '/v1/embeddings', { model: 'nomic-embed-text', input: 'x' }, 403, 'model_denied'],
    ['show: legacy name', '/api/show', { name: 'llama3.2' }, null],
    ['show: legacy name denied', '/api/show', { name: 'mistral' }, 403, 'model_denied'],
    ['show: empty model falls back to name, as in Ollama', '/api/show', { model: '', name: 'mistral' }, 403, 'model_denied'],
    ['show: null model falls back to name', '/api/show', { model: null, name: 'mistral' }, 403, 'model_denied'],
    ['show: model wins over name', '/api/show', { model: 'llama3.2', name: 'mistral' }, null],
    ['copy: both allowed', '/api/copy', { source: 'llama3.2', destination: 'qwen2.5:mine' }, null],
    ['copy: source denied', '/api/copy', { source: 'mistral', destination: 'qwen2.5:mine' }, 403, 'model_denied'],
    ['copy: destination not writable', '/api/copy', { source: 'llama3.2', destination: 'mistral' }, 403, 'write_denied'],
    ['copy: destination missing', '/api/copy', { source: 'llama3.2' }, 400, 'model_missing'],
    ['pull: allowed tag', '/api/pull', { model: 'qwen2.5:14b' }, null],
    ['create: from denied', '/api/create', { model: 'qwen2.5:mine', from: 'mistral' }, 403, 'model_denied'],
    ['create: no from', '/api/create', { model: 'qwen2.5:mine', files: {} }, null],
    ['Go decodes "Model" as model', '/api/chat', { model: 'llama3.2', Model: 'mistral' }, 400, 'ambiguous_field'],
    ['Go folds the Kelvin sign', '/api/chat', { model: 'llama3.2', '\u212aeep_alive': -1 }, 400, 'ambiguous_field'],
    ['Go folds the long s', '/api/copy', { source: 'llama3.2', destination: 'qwen2.5:x', '\u017fource': 'mistral' }, 400, 'ambiguous_field'],
    ['unknown fields are left to Ollama', '/api/chat', { model: 'llama3.2', Think: true }, null],
  ])('%s', (_, path, b, status, reason) => {
    const r = body(path, b, only);
    if (status === null) expect(r.ok).toBe(true);
    else expect(r).toMatchObject({ ok: false, refusal: { status, reason } });
  });

  test('the refusal reads like Ollama', () => {
    expect(body('/api/chat', { model: 'mistral' }, only)).toEqual({
      ok: false,
      refusal: { status: 403, reason: 'model_denied', error: 'model "mistral" is not allowed for this peer' },
    });
    expect(body('/api/generate', {}, only)).toMatchObject({ refusal: { error: 'model is required' } });
  });

  test('/v1/models/:model answers 404 for a denied model, like an unknown one', () => {
    const e = endpoint('/v1/models/mistral', 'GET');
    expect(decideBody({ ...e, body: Buffer.alloc(0), policy: policy(only) })).toEqual({
      ok: false,
      refusal: { status: 404, reason: 'model_denied', error: 'model "mistral" not found' },
    });
    const ok = endpoint('/v1/models/llama3.2', 'GET');
    expect(decideBody({ ...ok, body: Buffer.alloc(0), policy: policy(only) })).toMatchObject({ ok: true, model: 'llama3.2:latest' });
  });

  test.each<[string, Buffer, string]>([
    ['empty', Buffer.alloc(0), 'missing request body'],
    ['not JSON', Buffer.from('{model:'), 'invalid JSON in request body'],
    ['an array', json([{ model: 'x' }]), 'request body must be a JSON object'],
    ['a string', json('x'), 'request body must be a JSON object'],
    ['null', Buffer.from('null'), 'request body must be a JSON object'],
  ])('%s body: 400', (_, b, error) => {
    expect(body('/api/chat', b)).toEqual({ ok: false, refusal: { status: 400, reason: 'bad_json', error } });
  });

  test('nothing to change: the same JSON is forwarded, re-serialised', () => {
    const b = Buffer.from('{ "model" : "llama3.2", "prompt": "hi", "keep_alive": "1m" }');
    const r = body('/api/generate', b, { ...only, maxKeepAliveSec: 300 });
    expect(r.ok && r.forward.toString()).toBe('{"model":"llama3.2","prompt":"hi","keep_alive":"1m"}');
  });

  test('duplicate keys: what is forwarded is what was checked (no second model for Ollama to read)', () => {
    const r = body('/api/show', Buffer.from('{"model":"evil","model":null,"name":"llama3.2"}'), only);
    expect(r.ok && r.forward.toString()).toBe('{"model":null,"name":"llama3.2"}');
    const o = body('/api/generate', Buffer.from('{"model":"llama3.2","options":{"num_ctx":1000000},"options":{}}'), { ...only, maxNumCtx: 8192 });
    expect(o.ok && JSON.parse(o.forward.toString()).options).toEqual({});
  });

  test.each(['keep_al\u0131ve', 'opt\u0131ons', 'model\u0130', '\u00b5odel'])('a non-ASCII field name (%s) is refused: Go would fold it onto a real one', (k) => {
    const r = body('/api/generate', Buffer.from(`{"model":"llama3.2","${k}":1}`), only);
    expect(r).toMatchObject({ ok: false, refusal: { status: 400, reason: 'ambiguous_field' } });
  });

  test.each<[string, unknown, unknown]>([
    ['seconds over the limit', 3600, 300],
    ['seconds under the limit', 60, 60],
    ['zero (unload now)', 0, 0],
    ['negative = forever', -1, 300],
    ['"1h30m"', '1h30m', 300],
    ['"5m" (exactly the limit)', '5m', '5m'],
    ['"4m59.5s"', '4m59.5s', '4m59.5s'],
    ['"-1"', '-1', 300],
    ['"-1m"', '-1m', 300],
    ['"3600" as text', '3600', 300],
    ['"0"', '0', '0'],
    ['absent (Ollama would keep it 5 min, its default)', undefined, 300],
  ])('keep_alive %s → %j', (_, given, sent) => {
    const r = body('/api/generate', { model: 'llama3.2', keep_alive: given }, { maxKeepAliveSec: 300 });
    expect(r.ok).toBe(true);
    if (r.ok) expect(JSON.parse(r.forward.toString()).keep_alive).toEqual(sent);
  });

  test.each<[string, string, number | null, unknown]>([
    ['a clamp under Ollama\'s 5-minute default', '/api/chat', 60, 60],
    ['a clamp over it: the default stands', '/api/generate', 3600, 300],
    ['embeddings keep their model loaded too', '/api/embed', 30, 30],
    ['no clamp: left to Ollama', '/api/chat', null, undefined],
    ['the OpenAI-compatible API has no keep_alive: left alone', '/v1/chat/completions', 60, undefined],
  ])('keep_alive omitted, %s', (_, path, clamp, sent) => {
    const b = path === '/api/embed' ? { model: 'x', input: 'hi' } : path.startsWith('/v1') ? { model: 'x', messages: [] } : { model: 'x', prompt: 'hi', messages: [] };
    const r = body(path, b, { maxKeepAliveSec: clamp });
    expect(r.ok).toBe(true);
    if (r.ok) expect(JSON.parse(r.forward.toString()).keep_alive).toEqual(sent);
  });

  test.each<[unknown]>([['5 minutes'], ['1d'], [true], [{}]])('keep_alive %j cannot be clamped: 400', (given) => {
    expect(body('/api/chat', { model: 'x', keep_alive: given }, { maxKeepAliveSec: 300 })).toMatchObject({
      ok: false,
      refusal: { status: 400, reason: 'bad_keep_alive' },
    });
  });

  test('keep_alive is not touched without a clamp', () => {
    const r = body('/api/chat', { model: 'x', keep_alive: -1 });
    expect(r.ok && JSON.parse(r.forward.toString()).keep_alive).toBe(-1);
  });

  test('keepAliveSeconds parses Go durations', () => {
    expect(keepAliveSeconds('1h30m')).toBe(5400);
    expect(keepAliveSeconds('1.5h')).toBe(5400);
    expect(keepAliveSeconds('500ms')).toBe(0.5);
    expect(keepAliveSeconds('-5m')).toBe(Infinity);
    expect(keepAliveSeconds('+5m')).toBe(300);
    expect(keepAliveSeconds('5')).toBe(5);
    expect(keepAliveSeconds('m')).toBeNull();
    expect(keepAliveSeconds('')).toBeNull();
  });

  test('options.num_ctx is clamped, other options kept', () => {
    const r = body('/api/chat', { model: 'x', options: { num_ctx: 131072, temperature: 0.2 } }, { maxNumCtx: 8192 });
    expect(r.ok && JSON.parse(r.forward.toString())).toEqual({ model: 'x', options: { num_ctx: 8192, temperature: 0.2 } });
    const small = Buffer.from('{"model":"x","options":{"num_ctx":4096}}');
    const s = body('/api/chat', small, { maxNumCtx: 8192 });
    expect(s.ok && s.forward.toString()).toBe(small.toString());
    expect(body('/api/generate', { model: 'x', options: { num_ctx: '99999' } }, { maxNumCtx: 8192 })).toMatchObject({
      ok: false,
      refusal: { reason: 'bad_option' },
    });
  });

  test('clamps apply to inference only', () => {
    const b = json({ model: 'x', keep_alive: -1, options: { num_ctx: 1e6 } });
    const r = body('/api/show', b, { maxKeepAliveSec: 1, maxNumCtx: 1 });
    expect(r.ok && r.forward.toString()).toBe(b.toString());
  });

  test.each<[string, string, unknown, boolean]>([
    ['budget, v1 chat stream', '/v1/chat/completions', { model: 'x', messages: [], stream: true }, true],
    ['budget, v1 completions stream', '/v1/completions', { model: 'x', prompt: 'p', stream: true }, true],
    ['budget, v1 chat not streaming', '/v1/chat/completions', { model: 'x', messages: [] }, false],
    ['budget, native chat', '/api/chat', { model: 'x', messages: [] }, false],
  ])('include_usage: %s', (_, path, b, injected) => {
    const r = body(path, b, { tokensPerDay: 1000 });
    expect(r.ok).toBe(true);
    if (r.ok) expect(JSON.parse(r.forward.toString()).stream_options).toEqual(injected ? { include_usage: true } : undefined);
  });

  test('include_usage: existing stream_options are kept, case variants dropped', () => {
    const r = body(
      '/v1/chat/completions',
      { model: 'x', messages: [], stream: true, stream_options: { include_usage: false, Include_Usage: false, other: 1 } },
      { tokensPerDay: 1000 },
    );
    expect(r.ok && JSON.parse(r.forward.toString()).stream_options).toEqual({ other: 1, include_usage: true });
    const already = json({ model: 'x', messages: [], stream: true, stream_options: { include_usage: true } });
    const a = body('/v1/chat/completions', already, { tokensPerDay: 1000 });
    expect(a.ok && a.forward.toString()).toBe(already.toString());
    const noBudget = body('/v1/chat/completions', { model: 'x', messages: [], stream: true });
    expect(noBudget.ok && JSON.parse(noBudget.forward.toString()).stream_options).toBeUndefined();
  });

  test.each<[string, unknown, boolean]>([
    ['/api/generate', {}, true],
    ['/api/generate', { stream: false }, false],
    ['/api/generate', { stream: null }, true],
    ['/api/chat', { stream: true }, true],
    ['/api/pull', {}, true],
    ['/api/embed', { stream: true }, false],
    ['/api/show', {}, false],
    ['/v1/chat/completions', {}, false],
    ['/v1/chat/completions', { stream: true }, true],
    ['/v1/completions', { stream: false }, false],
  ])('%s %j streams: %s', (path, extra, stream) => {
    const r = body(path, { model: 'x', ...(extra as object) }, { writeModels: null });
    expect(r).toMatchObject({ ok: true, stream });
  });

  test.each<[string, unknown, string | null]>([
    ['/api/generate', { model: 'x', prompt: 'Why is the sky blue? ☁' }, '[["prompt","Why is the sky blue? ☁"]]'],
    ['/api/chat', { model: 'x', messages: [{ role: 'user', content: 'hi' }] }, '[["messages",[{"content":"hi","role":"user"}]]]'],
    ['/api/embed', { model: 'x', input: ['a', 'b'] }, '[["input",["a","b"]]]'],
    ['/v1/embeddings', { model: 'x', input: 'text' }, '[["input","text"]]'],
    ['/api/generate', { model: 'x' }, null],
    ['/api/show', { model: 'x' }, null],
  ])('prompt digest of %s %j', (path, b, hashed) => {
    const r = body(path, b);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.prompt).toEqual(hashed === null ? null : { sha256: sha(hashed), length: Buffer.byteLength(hashed), text: hashed });
    }
  });

  test('the model reported is the first one, normalised', () => {
    expect(body('/api/copy', { source: 'Llama3.2', destination: 'x' }, { writeModels: ['x'] })).toMatchObject({ ok: true, model: 'llama3.2:latest' });
    expect(body('/api/show', { name: 'library/qwen2.5:7b' })).toMatchObject({ ok: true, model: 'qwen2.5:7b' });
    const tags = endpoint('/api/tags', 'GET');
    expect(decideBody({ ...tags, body: Buffer.alloc(0), policy: DEFAULT_POLICY })).toMatchObject({ ok: true, model: null, stream: false, prompt: null });
  });

  test('blob bodies pass through unread', () => {
    const e = endpoint('/api/blobs/sha256:' + 'a'.repeat(64));
    const b = Buffer.from([0, 1, 2, 255]);
    expect(decideBody({ ...e, body: b, policy: policy(only) })).toEqual({ ok: true, forward: b, model: null, stream: false, prompt: null });
  });

  test('a pathologically nested prompt is refused, not thrown', () => {
    const deep = Buffer.from(`{"model":"x","prompt":${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
    const r = body('/api/generate', deep);
    expect(r).toMatchObject({ ok: false, refusal: { status: 400 } });
  });
});
