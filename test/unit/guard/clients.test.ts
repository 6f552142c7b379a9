/**
 * Real clients through the guard with the peer's certificate: curl, the
 * `ollama` npm client and the `openai` npm client (each with undici's fetch
 * and an Agent carrying the client certificate) stream a chat.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { errorOf, ndjson, startEnv, type GuardEnv } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

const run = promisify(execFile);
let env: GuardEnv;
let dir: string;
const agents: Agent[] = [];

beforeAll(async () => {
  env = await startEnv({ sim: { tokenRate: 200, tokens: 12 }, peers: [{ name: 'alice', address: '127.0.0.1', policy: { models: ['llama3.2'] } }] });
  dir = mkdtempSync(join(tmpdir(), 'guard-clients-'));
  const alice = env.certs.get('alice')!;
  writeFileSync(join(dir, 'alice.crt'), alice.certPem);
  writeFileSync(join(dir, 'alice.key'), alice.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'ca.crt'), env.ca.certPem);
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.close()));
  await env?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  env.sim.clear();
  env.records.length = 0;
});

/** undici's fetch through an Agent that presents alice's certificate (or none). */
function certFetch(withCert = true): typeof fetch {
  const alice = env.certs.get('alice')!;
  const agent = new Agent({ connect: { ca: env.ca.certPem, ...(withCert ? { cert: alice.certPem, key: alice.keyPem } : {}) } });
  agents.push(agent);
  return ((input: Parameters<typeof undiciFetch>[0], init?: Parameters<typeof undiciFetch>[1]) => undiciFetch(input, { ...init, dispatcher: agent })) as unknown as typeof fetch;
}

const base = (): string => `https://127.0.0.1:${env.port}`;

describe('curl', () => {
  const curl = (...args: string[]) => run('curl', ['-sS', '--cacert', join(dir, 'ca.crt'), '-w', '\n%{http_code}', ...args], { timeout: 10_000 });

  test('with --cert/--key a chat streams through', async () => {
    const { stdout } = await curl('--cert', join(dir, 'alice.crt'), '--key', join(dir, 'alice.key'), '-N', '-d', JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }), `${base()}/api/chat`);
    const code = stdout.slice(stdout.lastIndexOf('\n') + 1);
    expect(code).toBe('200');
    const lines = ndjson(stdout.slice(0, stdout.lastIndexOf('\n')));
    expect(lines).toHaveLength(13);
    expect(lines.at(-1)).toMatchObject({ done: true, eval_count: 12 });
    // curl -d sends application/x-www-form-urlencoded: accepted as JSON, forwarded as sent
    expect(env.sim.requests.map((q) => q.path)).toEqual(['/api/chat']);
  });

  test('without a certificate: 401 in JSON; a denied model: 403', async () => {
    const anon = await curl(`${base()}/api/tags`);
    expect(anon.stdout).toBe('{"error":"client certificate required"}\n401');
    const denied = await curl('--cert', join(dir, 'alice.crt'), '--key', join(dir, 'alice.key'), '-d', '{"model":"qwen2.5:0.5b","prompt":"x"}', `${base()}/api/generate`);
    expect(denied.stdout).toBe('{"error":"model \\"qwen2.5:0.5b\\" is not allowed for this peer"}\n403');
    expect(env.sim.requests).toHaveLength(0);
  });
});

describe('ollama npm client', () => {
  test('streams a chat, lists only allowed models, and surfaces refusals as errors', async () => {
    const ollama = new Ollama({ host: base(), fetch: certFetch() });
    const parts: string[] = [];
    let final: { done: boolean; eval_count: number } | undefined;
    for await (const part of await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue?' }], stream: true })) {
      parts.push(part.message.content);
      if (part.done) final = part;
    }
    expect(parts.length).toBe(13);
    expect(final).toMatchObject({ done: true, eval_count: 12 });
    expect((await ollama.list()).models.map((m) => m.name)).toEqual(['llama3.2:latest']);
    await expect(ollama.chat({ model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status_code: 403, error: 'model "qwen2.5:0.5b" is not allowed for this peer' });
    await expect(ollama.pull({ model: 'evil' })).rejects.toMatchObject({ status_code: 403, error: 'endpoint "pull" is not allowed for this peer' });
    expect(env.sim.requests.map((q) => q.path)).toEqual(['/api/chat', '/api/tags']);
    await waitFor(() => env.records.length === 4, 2000, 'four records');
    expect(env.records[0]).toMatchObject({ peer: 'alice', endpoint: 'chat', status: 200, evalTokens: 12 });
  });

  test('without a certificate the client gets the 401 error', async () => {
    const ollama = new Ollama({ host: base(), fetch: certFetch(false) });
    await expect(ollama.list()).rejects.toMatchObject({ status_code: 401, error: 'client certificate required' });
    expect(env.sim.requests).toHaveLength(0);
  });
});

describe('openai npm client', () => {
  test('streams a chat completion and lists only allowed models', async () => {
    const openai = new OpenAI({ baseURL: `${base()}/v1`, apiKey: 'unused', fetch: certFetch(), maxRetries: 0 });
    const stream = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'Say hi' }], stream: true, stream_options: { include_usage: true } });
    let text = '';
    let chunks = 0;
    let usage: { completion_tokens: number } | undefined;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(chunks).toBeGreaterThanOrEqual(13);
    expect(text.length).toBeGreaterThan(0);
    expect(usage?.completion_tokens).toBe(12);
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['llama3.2:latest']);
    await waitFor(() => env.records.length === 2, 2000, 'two records');
    expect(env.records[0]).toMatchObject({ peer: 'alice', endpoint: 'v1.chat', status: 200, evalTokens: 12 });
    // the API key is not passed on to Ollama
    expect(env.sim.requests[0]!.headers.authorization).toBeUndefined();
  });

  test('a denied model is an APIError with status 403 and the guard\'s message', async () => {
    const openai = new OpenAI({ baseURL: `${base()}/v1`, apiKey: 'unused', fetch: certFetch(), maxRetries: 0 });
    const err = await openai.chat.completions.create({ model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(403);
    // the client takes the body's "error" field as the error
    expect((err as InstanceType<typeof OpenAI.APIError>).error).toBe('model "qwen2.5:0.5b" is not allowed for this peer');
    expect(env.sim.requests).toHaveLength(0);
  });
});

test('the error body helper rejects anything but {"error": string}', () => {
  expect(() => errorOf({ text: '{"error":"x","extra":1}' })).toThrow();
  expect(errorOf({ text: '{"error":"x"}' })).toBe('x');
});
