/**
 * What the guard does with the model names it reads (issue 10, items 5 and 8):
 * every name is checked with Ollama's grammar before any allowlist, compared on
 * the full name Ollama would use, and recorded in its shortest form; writes
 * (create, copy, delete, pull, push) need the peer's writeModels.
 */
import { describe, expect, test } from 'vitest';
import { DEFAULT_ENDPOINTS, matchEndpoint, type EndpointDef } from '../../../../src/core/ollama-api.js';
import { DEFAULT_POLICY, decideBody, mergePolicy, modelAllowed, policyOverrideSchema, policySchema, type Policy } from '../../../../src/core/policy.js';

const policy = (o: Partial<Policy> & Record<string, unknown> = {}): Policy => mergePolicy(DEFAULT_POLICY, o as Partial<Policy>);
const WRITES = [...DEFAULT_ENDPOINTS, 'pull', 'push', 'delete', 'create', 'copy'] as Policy['endpoints'];

function endpoint(path: string, method = 'POST'): { endpoint: EndpointDef; pathModel?: string } {
  const m = matchEndpoint(path, method);
  if (m.kind !== 'ok') throw new Error(`${method} ${path} does not match`);
  return m;
}
const decide = (path: string, body: unknown, p: Policy, method = 'POST') =>
  decideBody({ ...endpoint(path, method), body: Buffer.from(JSON.stringify(body)), policy: p });
const digest = `sha256:${'a'.repeat(64)}`;

describe('names are checked before anything else, allowlist or not', () => {
  const BAD = ['../../x', '../../../etc/passwd', 'x\u0000', 'x\ny', 'a'.repeat(300), 'ns//m', '/m', 'm:', `x@${digest}`, 'https://evil.io/x/y', ' llama3.2', 'registry.ollama.ai/llama3.2'];
  const anything = policy({ endpoints: WRITES, models: null, writeModels: null });
  const allowlist = policy({ endpoints: WRITES, models: ['llama3.2:*'], writeModels: ['llama3.2:*'] });

  test.each(BAD)('%j: 400 bad_model on generate, show, copy, create and pull, with and without allowlists', (name) => {
    for (const p of [anything, allowlist]) {
      for (const [path, body, method] of [
        ['/api/generate', { model: name, prompt: 'hi' }],
        ['/v1/chat/completions', { model: name, messages: [] }],
        ['/api/show', { name }],
        ['/api/copy', { source: 'llama3.2', destination: name }],
        ['/api/copy', { source: name, destination: 'llama3.2:x' }],
        ['/api/create', { model: 'llama3.2:x', from: name }],
        ['/api/pull', { model: name }],
        ['/api/delete', { model: name }, 'DELETE'],
      ] as const) {
        const r = decide(path, body, p, method);
        expect(r, `${path} ${JSON.stringify(body)}`).toMatchObject({ ok: false, refusal: { status: 400, reason: 'bad_model' } });
        if (!r.ok) expect(r.refusal.error).toMatch(/^invalid model name /);
      }
    }
  });

  test('a bad name in the /v1/models/:model path: 400 bad_model', () => {
    for (const p of [anything, allowlist]) {
      const r = decideBody({ ...endpoint('/v1/models/x@sha256:abc', 'GET'), body: Buffer.alloc(0), policy: p });
      expect(r).toMatchObject({ ok: false, refusal: { status: 400, reason: 'bad_model' } });
    }
  });

  test('a bad name comes before a denied one: the client learns what to fix', () => {
    const r = decide('/api/copy', { source: 'mistral', destination: '../x' }, allowlist);
    expect(r).toMatchObject({ ok: false, refusal: { status: 400, reason: 'bad_model' } });
  });
});

describe('allowlists compare the full name Ollama reads', () => {
  const p = policy({ models: ['llama3.2', 'ns/m', 'qwen2.5:*'] });
  test.each<[string, boolean]>([
    ['llama3.2', true],
    ['library/llama3.2:latest', true],
    ['registry.ollama.ai/library/llama3.2', true],
    ['REGISTRY.ollama.ai/LIBRARY/Llama3.2:LATEST', true],
    ['ns/m', true],
    ['registry.ollama.ai/ns/m:latest', true],
    // Ollama: host "library", namespace "ns" — not registry.ollama.ai/ns/m
    ['library/ns/m', false],
    ['other.host/library/llama3.2', false],
    ['qwen2.5:0.5b', true],
    ['other.host/library/qwen2.5:0.5b', false],
  ])('%j allowed: %s', (name, ok) => {
    expect(modelAllowed(p, name)).toBe(ok);
    const r = decide('/api/generate', { model: name, prompt: 'hi' }, p);
    if (ok) expect(r).toMatchObject({ ok: true });
    else expect(r).toMatchObject({ ok: false, refusal: { status: 403, reason: 'model_denied' } });
  });

  test('registry.ollama.ai/llama3.2 no longer passes as llama3.2:latest (Ollama reads namespace "registry.ollama.ai")', () => {
    expect(decide('/api/generate', { model: 'registry.ollama.ai/llama3.2', prompt: 'hi' }, p)).toMatchObject({ ok: false, refusal: { status: 400, reason: 'bad_model' } });
  });

  test('the record gets the shortest form of the full name', () => {
    const any = policy();
    expect(decide('/api/generate', { model: 'registry.ollama.ai/library/Llama3.2:1B', prompt: 'hi' }, any)).toMatchObject({ ok: true, model: 'llama3.2:1b' });
    expect(decide('/api/generate', { model: 'library/ns/m', prompt: 'hi' }, any)).toMatchObject({ ok: true, model: 'library/ns/m:latest' });
    expect(decide('/api/generate', { model: 'registry.ollama.ai/user/m', prompt: 'hi' }, any)).toMatchObject({ ok: true, model: 'user/m:latest' });
  });

  test('the forwarded body keeps the name as the client wrote it', () => {
    const r = decide('/api/generate', { model: 'Llama3.2', prompt: 'hi' }, p);
    expect(r.ok && JSON.parse(r.forward.toString()).model).toBe('Llama3.2');
  });
});

describe('stored patterns keep their meaning', () => {
  test.each<[string, string[], string[]]>([
    ['llama3.2', ['llama3.2', 'llama3.2:latest', 'library/llama3.2', 'registry.ollama.ai/library/llama3.2:latest'], ['llama3.2:1b', 'ns/llama3.2', 'h/library/llama3.2']],
    ['llama3.2:*', ['llama3.2', 'llama3.2:1b', 'registry.ollama.ai/library/llama3.2:70b'], ['llama3.2-vision:11b', 'ns/llama3.2:1b']],
    ['user/model:tag', ['user/model:tag', 'registry.ollama.ai/user/model:tag', 'USER/Model:TAG'], ['user/model', 'user/model:latest', 'model:tag']],
    ['hf.co/user/model:q4_k_m', ['hf.co/user/model:Q4_K_M'], ['user/model:q4_k_m']],
    ['alice/*', ['alice/x', 'alice/x:1', 'registry.ollama.ai/alice/y:latest'], ['alice', 'bob/x', 'h/alice/x']],
  ])('%j', (pattern, yes, no) => {
    const p = policy({ models: [pattern] });
    for (const m of yes) expect(modelAllowed(p, m), m).toBe(true);
    for (const m of no) expect(modelAllowed(p, m), m).toBe(false);
  });

  test.each([
    'registry.ollama.ai/llama3.2', 'library/*:*', '*', '*:*', 'x:1b:*', `x@${digest}`, 'https://h/n/m', '../x', 'a'.repeat(81), 'x:', 'ns/*:tag',
  ])('pattern %j is refused by the schema', (pattern) => {
    expect(policySchema.safeParse({ models: [pattern] }).success).toBe(false);
    expect(policySchema.safeParse({ writeModels: [pattern] }).success).toBe(false);
  });
});

describe('writeModels: what a peer may create, overwrite, delete, pull or push', () => {
  test('the default is no writes at all, even with the endpoints allowed', () => {
    expect(policySchema.parse({}).writeModels).toEqual([]);
    const p = policy({ endpoints: WRITES });
    for (const [path, body, method] of [
      ['/api/pull', { model: 'llama3.2' }],
      ['/api/push', { model: 'alice/x' }],
      ['/api/delete', { model: 'llama3.2' }, 'DELETE'],
      ['/api/create', { model: 'alice/x', from: 'llama3.2' }],
      ['/api/copy', { source: 'llama3.2', destination: 'alice/x' }],
    ] as const) {
      const r = decide(path, body, p, method);
      expect(r, path).toMatchObject({ ok: false, refusal: { status: 403, reason: 'write_denied' } });
      if (!r.ok) expect(r.refusal.error).toMatch(/writeModels/);
    }
  });

  const alice = policy({ endpoints: WRITES, models: null, writeModels: ['alice/*'] });
  test.each<[string, string, unknown, string | null]>([
    ['copy into her namespace', '/api/copy', { source: 'llama3.2', destination: 'alice/mine' }, null],
    ['copy over a model others use', '/api/copy', { source: 'alice/mine', destination: 'llama3.2' }, 'write_denied'],
    ['copy over another namespace', '/api/copy', { source: 'alice/mine', destination: 'bob/x:latest' }, 'write_denied'],
    ['copy to a look-alike on another host', '/api/copy', { source: 'alice/mine', destination: 'evil.io/alice/x' }, 'write_denied'],
    ['create in her namespace', '/api/create', { model: 'alice/new', from: 'llama3.2' }, null],
    ['create over llama3.2', '/api/create', { model: 'llama3.2', from: 'alice/x' }, 'write_denied'],
    ['create with the legacy name field', '/api/create', { name: 'llama3.2', from: 'alice/x' }, 'write_denied'],
    ['pull into her namespace', '/api/pull', { model: 'alice/x' }, null],
    ['pull something else', '/api/pull', { model: 'llama3.2' }, 'write_denied'],
    ['pull from another registry', '/api/pull', { model: 'evil.io/alice/x' }, 'write_denied'],
    ['push hers', '/api/push', { model: 'alice/x' }, null],
    ['push another', '/api/push', { name: 'llama3.2' }, 'write_denied'],
  ])('%s', (_what, path, body, reason) => {
    const r = decide(path, body, alice);
    if (reason === null) expect(r).toMatchObject({ ok: true });
    else expect(r).toMatchObject({ ok: false, refusal: { status: 403, reason } });
  });

  test('delete of her model passes, of another is refused', () => {
    expect(decide('/api/delete', { model: 'alice/x' }, alice, 'DELETE')).toMatchObject({ ok: true, model: 'alice/x:latest' });
    expect(decide('/api/delete', { name: 'llama3.2' }, alice, 'DELETE')).toMatchObject({ ok: false, refusal: { status: 403, reason: 'write_denied' } });
  });

  test("copy's source, create's from and push's model must also pass the read allowlist", () => {
    const p = policy({ endpoints: WRITES, models: ['alice/*', 'llama3.2'], writeModels: ['alice/*'] });
    expect(decide('/api/copy', { source: 'mistral', destination: 'alice/x' }, p)).toMatchObject({ ok: false, refusal: { status: 403, reason: 'model_denied' } });
    expect(decide('/api/create', { model: 'alice/x', from: 'mistral' }, p)).toMatchObject({ ok: false, refusal: { status: 403, reason: 'model_denied' } });
    expect(decide('/api/copy', { source: 'llama3.2', destination: 'alice/x' }, p)).toMatchObject({ ok: true, model: 'llama3.2:latest' });
    const q = policy({ endpoints: WRITES, models: ['llama3.2'], writeModels: ['alice/*'] });
    expect(decide('/api/push', { model: 'alice/x' }, q)).toMatchObject({ ok: false, refusal: { status: 403, reason: 'model_denied' } });
    // pulled or created names need not be readable already
    expect(decide('/api/pull', { model: 'alice/x' }, q)).toMatchObject({ ok: true });
  });

  test('null = any name', () => {
    const p = policy({ endpoints: WRITES, writeModels: null });
    expect(decide('/api/copy', { source: 'a', destination: 'llama3.2' }, p)).toMatchObject({ ok: true });
  });

  test('the refusal names the field to set', () => {
    expect(decide('/api/copy', { source: 'alice/mine', destination: 'llama3.2' }, alice)).toEqual({
      ok: false,
      refusal: { status: 403, reason: 'write_denied', error: 'model "llama3.2" may not be created, overwritten, deleted, pulled or pushed by this peer (policy field writeModels)' },
    });
  });
});

describe("create's files, adapters and draft_files name blobs by digest", () => {
  const read = policy({ endpoints: WRITES, models: ['alice/*'], writeModels: ['alice/*'] });
  test.each(['files', 'adapters', 'draft_files'])('%s: refused while the peer has a models allowlist', (field) => {
    const r = decide('/api/create', { model: 'alice/x', [field]: { 'model.gguf': digest } }, read);
    expect(r).toMatchObject({ ok: false, refusal: { status: 403, reason: 'digest_denied' } });
    if (!r.ok) expect(r.refusal.error).toMatch(/digest/);
  });

  test('Go would decode "Files" as files: refused as ambiguous', () => {
    expect(decide('/api/create', { model: 'alice/x', Files: { 'model.gguf': digest } }, read)).toMatchObject({ ok: false, refusal: { status: 400, reason: 'ambiguous_field' } });
  });

  test('an empty map references nothing; a peer that may read every model may use digests', () => {
    expect(decide('/api/create', { model: 'alice/x', from: 'alice/y', files: {} }, read)).toMatchObject({ ok: true });
    const all = policy({ endpoints: WRITES, models: null, writeModels: ['alice/*'] });
    expect(decide('/api/create', { model: 'alice/x', files: { 'model.gguf': digest }, adapters: { 'a.gguf': digest } }, all)).toMatchObject({ ok: true });
  });
});

describe('the writeModels field', () => {
  test('round-trips through the schemas', () => {
    expect(policySchema.parse({ writeModels: ['alice/*', 'llama3.2:mine'] }).writeModels).toEqual(['alice/*', 'llama3.2:mine']);
    expect(policySchema.parse({ writeModels: null }).writeModels).toBeNull();
    expect(policyOverrideSchema.parse({ writeModels: ['alice/*'] })).toEqual({ writeModels: ['alice/*'] });
    expect(mergePolicy(DEFAULT_POLICY, { writeModels: ['x'] } as Partial<Policy>)).toMatchObject({ writeModels: ['x'] });
  });
});
