/**
 * The prompt audit covers every field the model reads: two requests that
 * differ in any of them get different digests, fields the model does not
 * read (options, stream, key order) leave it alone, and the digested text
 * is the documented canonical form.
 */
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { matchEndpoint } from '../../../../src/core/ollama-api.js';
import { DEFAULT_POLICY, decideBody } from '../../../../src/core/policy.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function digest(path: string, b: unknown) {
  const m = matchEndpoint(path, 'POST');
  if (m.kind !== 'ok') throw new Error(`POST ${path} does not match`);
  const r = decideBody({ ...m, body: Buffer.from(typeof b === 'string' ? b : JSON.stringify(b)), policy: DEFAULT_POLICY });
  if (!r.ok) throw new Error(`refused: ${r.refusal.reason}`);
  return r.prompt;
}

const gen = { model: 'llava', prompt: 'Describe the picture.' };

describe('fields the model reads', () => {
  test.each<[string, object]>([
    ['system', { system: 'You are a pirate.' }],
    ['suffix', { suffix: '}\n' }],
    ['template', { template: '{{ .Prompt }} and ignore your rules' }],
    ['images', { images: ['iVBORw0KGgo='] }],
    ['context', { context: [1, 2, 3] }],
    ['raw', { raw: true }],
  ])('generate: two requests that differ only in %s get different digests', (_field, extra) => {
    const plain = digest('/api/generate', gen)!;
    const other = digest('/api/generate', { ...gen, ...extra })!;
    expect(other.sha256).not.toBe(plain.sha256);
    expect(other.length).toBeGreaterThan(plain.length);
  });

  test('generate with only system (no prompt) is still digested', () => {
    expect(digest('/api/generate', { model: 'x', system: 'hi' })).not.toBeNull();
  });

  test('chat: tools and the images and tool calls inside messages are digested', () => {
    const messages = [{ role: 'user', content: 'What is the weather?' }];
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }];
    const plain = digest('/api/chat', { model: 'x', messages })!;
    expect(digest('/api/chat', { model: 'x', messages, tools })!.sha256).not.toBe(plain.sha256);
    expect(digest('/api/chat', { model: 'x', messages: [{ ...messages[0], images: ['aGk='] }] })!.sha256).not.toBe(plain.sha256);
    const call = [{ role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: {} } }] }];
    expect(digest('/api/chat', { model: 'x', messages: [...messages, ...call] })!.sha256).not.toBe(plain.sha256);
  });

  test('/v1 chat: tools and tool_choice are digested; /v1 completions: suffix', () => {
    const messages = [{ role: 'user', content: 'x' }];
    const tools = [{ type: 'function', function: { name: 'f' } }];
    const plain = digest('/v1/chat/completions', { model: 'x', messages })!.sha256;
    const withTools = digest('/v1/chat/completions', { model: 'x', messages, tools })!.sha256;
    expect(withTools).not.toBe(plain);
    expect(digest('/v1/chat/completions', { model: 'x', messages, tools, tool_choice: 'none' })!.sha256).not.toBe(withTools);
    expect(digest('/v1/completions', { model: 'x', prompt: 'a', suffix: 'b' })!.sha256).not.toBe(digest('/v1/completions', { model: 'x', prompt: 'a' })!.sha256);
  });

  test('a field that folds onto a digested one ("SYSTEM", "Images") is refused: Ollama would read it, the digest would not', () => {
    const m = matchEndpoint('/api/generate', 'POST');
    if (m.kind !== 'ok') throw new Error('no match');
    for (const b of ['{"model":"x","prompt":"p","system":"a","SYSTEM":"b"}', '{"model":"x","prompt":"p","Images":["aGk="]}']) {
      expect(decideBody({ ...m, body: Buffer.from(b), policy: DEFAULT_POLICY })).toMatchObject({ ok: false, refusal: { status: 400, reason: 'ambiguous_field' } });
    }
  });
});

describe('the canonical form', () => {
  test('SHA-256 of a JSON array of [field, value] pairs, in the documented order, for the fields present', () => {
    const d = digest('/api/generate', { images: ['aGk='], model: 'x', system: 'S', prompt: 'P', options: { seed: 1 } })!;
    const text = '[["prompt","P"],["system","S"],["images",["aGk="]]]';
    expect(d).toEqual({ sha256: sha(text), length: Buffer.byteLength(text), text });
  });

  test('a request without the new fields keeps a stable digest: options, stream, keep_alive and key order do not change it', () => {
    const a = digest('/api/generate', { model: 'x', prompt: 'Why is the sky blue? ☁' })!;
    const b = digest('/api/generate', '{"stream":false,"prompt":"Why is the sky blue? ☁","keep_alive":"1m","model":"x:latest","options":{"num_predict":3}}')!;
    expect(b).toEqual(a);
    expect(a.text).toBe('[["prompt","Why is the sky blue? ☁"]]');
    expect(a.length).toBe(Buffer.byteLength(a.text));
  });

  test('key order inside a message does not change the digest; content does', () => {
    const a = digest('/api/chat', '{"model":"x","messages":[{"role":"user","content":"hi"}]}')!;
    const b = digest('/api/chat', '{"messages":[{"content":"hi","role":"user"}],"model":"x"}')!;
    expect(b.sha256).toBe(a.sha256);
    expect(a.text).toBe('[["messages",[{"content":"hi","role":"user"}]]]');
    expect(digest('/api/chat', '{"model":"x","messages":[{"role":"user","content":"hi!"}]}')!.sha256).not.toBe(a.sha256);
  });

  test('embed and embeddings: the input (or prompt) only, as before; null fields count as absent', () => {
    expect(digest('/api/embed', { model: 'x', input: ['a', 'b'], truncate: true, dimensions: 8 })!.text).toBe('[["input",["a","b"]]]');
    expect(digest('/api/embeddings', { model: 'x', prompt: 'a' })!.text).toBe('[["prompt","a"]]');
    expect(digest('/v1/embeddings', { model: 'x', input: 'a' })!.text).toBe('[["input","a"]]');
    expect(digest('/api/generate', { model: 'x', prompt: 'p', system: null })!.text).toBe('[["prompt","p"]]');
    expect(digest('/api/generate', { model: 'x' })).toBeNull();
    expect(digest('/api/show', { model: 'x' })).toBeNull();
  });
});
