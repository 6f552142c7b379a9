import { describe, expect, test } from 'vitest';
import { DEFAULT_ENDPOINTS, ENDPOINT_NAMES, canonicalPath, matchEndpoint } from '../../../../src/core/ollama-api.js';

describe('canonicalPath', () => {
  test.each([
    ['/', '/'],
    ['/api/chat', '/api/chat'],
    ['/api/tags?x=1&y=%2e', '/api/tags'],
    ['/v1/models/llama3.2:3b', '/v1/models/llama3.2:3b'],
    ['/api/blobs/sha256:' + 'a'.repeat(64), '/api/blobs/sha256:' + 'a'.repeat(64)],
    ['/API/PULL', '/API/PULL'],
  ])('%j is canonical', (raw, path) => {
    expect(canonicalPath(raw)).toEqual({ ok: true, path });
  });

  test.each([
    ['/api/../api/pull', /".." segment/],
    ['/api/./pull', /"\." segment/],
    ['/api/%70ull', /"%"/],
    ['/api/pull%2f', /"%"/],
    ['/api%2fpull', /"%"/],
    ['/api/%2e%2e/pull', /"%"/],
    ['//api/pull', /empty segment/],
    ['/api//pull', /empty segment/],
    ['/api/pull/', /ends with "\/"/],
    ['/api/pull;x', /";"/],
    ['/api/pull\\', /"\\"/],
    ['/api/pull%00', /"%"/],
    ['/api/pull\u0000', /U\+0000/],
    ['/api/pull\t', /U\+0009/],
    ['/api/ pull', /U\+0020/],
    ['/api/pull#x', /"#"/],
    ['/api/pu\u00efll', /U\+00ef/],
    ['/..', /".." segment/],
    ['/.', /"\." segment/],
    ['http://x/api/pull', /starting with/],
    ['*', /starting with/],
    ['', /starting with/],
    ['api/pull', /starting with/],
    ['/' + 'a'.repeat(2048), /longer than 2048/],
  ])('%j is refused', (raw, reason) => {
    const r = canonicalPath(raw);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  test('the query string is dropped but counts toward the 2048 limit', () => {
    expect(canonicalPath('/api/tags?' + 'a'.repeat(2030)).ok).toBe(true);
    expect(canonicalPath('/api/tags?' + 'a'.repeat(2040)).ok).toBe(false);
  });
});

describe('matchEndpoint', () => {
  test.each([
    ['/', 'GET', 'version'],
    ['/', 'HEAD', 'version'],
    ['/api/version', 'GET', 'version'],
    ['/api/generate', 'POST', 'generate'],
    ['/api/chat', 'POST', 'chat'],
    ['/api/embed', 'POST', 'embed'],
    ['/api/embeddings', 'POST', 'embeddings'],
    ['/api/tags', 'GET', 'tags'],
    ['/api/tags', 'HEAD', 'tags'],
    ['/api/show', 'POST', 'show'],
    ['/api/ps', 'GET', 'ps'],
    ['/api/pull', 'POST', 'pull'],
    ['/api/push', 'POST', 'push'],
    ['/api/delete', 'DELETE', 'delete'],
    ['/api/create', 'POST', 'create'],
    ['/api/copy', 'POST', 'copy'],
    ['/api/blobs/sha256:' + '0123456789abcdef'.repeat(4), 'HEAD', 'blobs'],
    ['/api/blobs/sha256:' + '0123456789abcdef'.repeat(4), 'POST', 'blobs'],
    ['/v1/chat/completions', 'POST', 'v1.chat'],
    ['/v1/completions', 'POST', 'v1.completions'],
    ['/v1/embeddings', 'POST', 'v1.embeddings'],
    ['/v1/models', 'GET', 'v1.models'],
  ])('%s %s is %s', (path, method, name) => {
    const m = matchEndpoint(path, method);
    expect(m.kind).toBe('ok');
    if (m.kind === 'ok') {
      expect(m.endpoint.name).toBe(name);
      expect(m.pathModel).toBeUndefined();
    }
  });

  test('/v1/models/:model carries the model from the path', () => {
    const m = matchEndpoint('/v1/models/llama3.2:3b', 'GET');
    expect(m).toMatchObject({ kind: 'ok', pathModel: 'llama3.2:3b', endpoint: { name: 'v1.models', modelFromPath: true } });
  });

  test.each([
    '/API/PULL',
    '/api/Pull',
    '/api/pull/x',
    '/api/blobs/sha256:abc',
    '/api/blobs/sha512:' + 'a'.repeat(64),
    '/api/blobs/sha256:' + 'g'.repeat(64),
    '/v1/models/user/model',
    '/v1/chat',
    '/api',
    '/api/experimental/whatever',
  ])('%s is unknown', (path) => {
    expect(matchEndpoint(path, 'GET')).toEqual({ kind: 'unknown' });
    expect(matchEndpoint(path, 'POST')).toEqual({ kind: 'unknown' });
  });

  test.each([
    ['/api/chat', 'GET', ['POST']],
    ['/api/tags', 'POST', ['GET', 'HEAD']],
    ['/api/delete', 'POST', ['DELETE']],
    ['/api/blobs/sha256:' + 'f'.repeat(64), 'GET', ['HEAD', 'POST']],
    ['/v1/models/x', 'DELETE', ['GET', 'HEAD']],
    ['/api/generate', 'OPTIONS', ['POST']],
    ['/api/generate', 'post', ['POST']],
  ])('%s %s: method not allowed, Allow %j', (path, method, allow) => {
    expect(matchEndpoint(path, method)).toMatchObject({ kind: 'method', allow });
  });

  test('where models and prompts are', () => {
    const at = (path: string, method = 'POST') => {
      const m = matchEndpoint(path, method);
      if (m.kind !== 'ok') throw new Error(`${path} did not match`);
      return m.endpoint;
    };
    expect(at('/api/generate')).toMatchObject({ modelFields: [['model']], promptFields: ['prompt', 'suffix', 'system', 'template', 'images', 'context', 'raw'], generative: true, body: 'json', streaming: 'default-on' });
    expect(at('/api/chat')).toMatchObject({ promptFields: ['messages', 'tools'], generative: true });
    expect(at('/api/embed')).toMatchObject({ promptFields: ['input'], generative: true, streaming: 'none' });
    expect(at('/v1/chat/completions')).toMatchObject({ promptFields: ['messages', 'tools', 'tool_choice'], streaming: 'opt-in' });
    expect(at('/api/show')).toMatchObject({ modelFields: [['model', 'name']], generative: false });
    expect(at('/api/copy')).toMatchObject({ modelFields: [['source']], writeModelFields: [['destination']] });
    expect(at('/api/create')).toMatchObject({ modelFields: [], writeModelFields: [['model', 'name']], optionalModelFields: [['from']], digestFields: ['files', 'adapters', 'draft_files'] });
    expect(at('/api/push')).toMatchObject({ modelFields: [['model', 'name']], writeModelFields: [['model', 'name']] });
    expect(at('/api/pull')).toMatchObject({ modelFields: [], writeModelFields: [['model', 'name']] });
    expect(at('/api/tags', 'GET')).toMatchObject({ modelFields: [], body: 'none', listsModels: 'tags' });
    expect(at('/api/ps', 'GET')).toMatchObject({ listsModels: 'tags' });
    expect(at('/v1/models', 'GET')).toMatchObject({ listsModels: 'v1.models' });
    expect(at('/api/blobs/sha256:' + 'a'.repeat(64))).toMatchObject({ body: 'binary' });
  });
});

test('the default endpoints leave out everything that changes the installed models', () => {
  expect([...ENDPOINT_NAMES].filter((n) => !DEFAULT_ENDPOINTS.includes(n)).sort()).toEqual(['blobs', 'copy', 'create', 'delete', 'pull', 'push']);
});
