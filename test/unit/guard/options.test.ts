/**
 * Model options through the real guard: what reaches Ollama (the simulator)
 * is what the policy allows, with the clamps written in; runner options a
 * policy does not list never reach it.
 */
import { ChatOllama } from '@langchain/ollama';
import { Ollama } from 'ollama';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { DEFAULT_OPTIONS } from '../../../src/core/model-options.js';
import { errorOf, startEnv, type GuardEnv } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

let env: GuardEnv;
const FAST = { requestsPerMinute: 100_000, burst: 1000 };
const BOB = { localAddress: '127.0.0.2' };

beforeAll(async () => {
  env = await startEnv({
    peers: [
      { name: 'alice', address: '127.0.0.1', policy: { ...FAST, maxTokensPerRequest: 8 } },
      { name: 'bob', address: '127.0.0.2', policy: { ...FAST, options: [...DEFAULT_OPTIONS, 'num_batch', 'num_gpu'], optionLimits: { num_batch: 512 } } },
    ],
  });
});
const agents: Agent[] = [];
afterAll(async () => {
  await Promise.all(agents.map((a) => a.close()));
  await env?.close();
});
beforeEach(() => {
  env.sim.clear();
  env.records.length = 0;
});

const upstreamBody = () => env.sim.requests[0]?.body as Record<string, any>;

describe('what Ollama receives', () => {
  test('num_predict -1 (unbounded) arrives as the peer\'s maxTokensPerRequest, and generation stops there', async () => {
    const r = await env.request('alice', { path: '/api/generate', body: { model: 'llama3.2', prompt: 'a long story', stream: false, options: { num_predict: -1, temperature: 0 } } });
    expect(r.status).toBe(200);
    expect(upstreamBody().options).toEqual({ num_predict: 8, temperature: 0 });
    expect(JSON.parse(r.text)).toMatchObject({ eval_count: 8, done_reason: 'length' });
  });

  test('a chat that names no options gets the clamp written in', async () => {
    const r = await env.request('alice', { path: '/api/chat', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false } });
    expect(r.status).toBe(200);
    expect(upstreamBody().options).toEqual({ num_predict: 8 });
  });

  test('/v1/chat/completions without max_tokens gets max_tokens = the bound', async () => {
    const r = await env.request('alice', { path: '/v1/chat/completions', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] } });
    expect(r.status).toBe(200);
    expect(upstreamBody().max_tokens).toBe(8);
    expect(JSON.parse(r.text).usage.completion_tokens).toBeLessThanOrEqual(8);
  });

  test('num_gpu 999 under the default policy: 403, recorded, and Ollama sees nothing', async () => {
    const r = await env.request('alice', { path: '/api/generate', body: { model: 'llama3.2', prompt: 'hi', options: { num_gpu: 999 } } });
    expect({ status: r.status, error: errorOf(r) }).toEqual({
      status: 403,
      error: `option "num_gpu" is not allowed for this peer (an admin can allow it in the policy's "options" list)`,
    });
    await waitFor(() => env.records.length === 1, 2000, 'the record');
    expect(env.records[0]).toMatchObject({ peer: 'alice', status: 403, refusal: 'option_denied' });
    expect(env.sim.requests).toEqual([]);
  });

  test('use_mlock under the default policy: 403, Ollama sees nothing', async () => {
    const r = await env.request('alice', { path: '/api/chat', body: { model: 'llama3.2', messages: [], options: { use_mlock: true } } });
    expect(r.status).toBe(403);
    expect(env.sim.requests).toEqual([]);
  });

  test('an admin-allowed runner option arrives bounded by optionLimits; num_predict is left alone without maxTokensPerRequest', async () => {
    const r = await env.request('bob', { path: '/api/generate', body: { model: 'llama3.2', prompt: 'hi', stream: false, options: { num_batch: 4096, num_gpu: 10, num_predict: 3 } }, ...BOB });
    expect(r.status).toBe(200);
    expect(upstreamBody().options).toEqual({ num_batch: 512, num_gpu: 10, num_predict: 3 });
  });
});

describe('real clients, as their users configure them', () => {
  /** undici's fetch through an Agent that presents alice's certificate. */
  function certFetch(): typeof fetch {
    const alice = env.certs.get('alice')!;
    const agent = new Agent({ connect: { ca: env.ca.certPem, cert: alice.certPem, key: alice.keyPem } });
    agents.push(agent);
    return ((input: Parameters<typeof undiciFetch>[0], init?: Parameters<typeof undiciFetch>[1]) => undiciFetch(input, { ...init, dispatcher: agent })) as unknown as typeof fetch;
  }
  const host = () => `https://127.0.0.1:${env.port}`;

  test('@langchain/ollama with its defaults works; with numGpu set its user reads why not', async () => {
    const plain = new ChatOllama({ model: 'llama3.2', baseUrl: host(), fetch: certFetch() });
    const answer = await plain.invoke('hi');
    expect(String(answer.content).length).toBeGreaterThan(0);
    expect(upstreamBody().options).toEqual({ num_predict: 8 });

    env.sim.clear();
    const greedy = new ChatOllama({ model: 'llama3.2', baseUrl: host(), fetch: certFetch(), numGpu: 999 });
    await expect(greedy.invoke('hi')).rejects.toThrow(/option "num_gpu" is not allowed for this peer/);
    expect(env.sim.requests).toEqual([]);
  });

  test('the ollama npm client with temperature works; with use_mmap it is refused', async () => {
    const ollama = new Ollama({ host: host(), fetch: certFetch() });
    const r = await ollama.generate({ model: 'llama3.2', prompt: 'hi', options: { temperature: 0, num_predict: 1000 } });
    expect(r.eval_count).toBe(8);
    await expect(ollama.generate({ model: 'llama3.2', prompt: 'hi', options: { use_mmap: false } })).rejects.toThrow(/option "use_mmap" is not allowed/);
  });
});
