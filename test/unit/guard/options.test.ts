/**
 * Model options through the real guard: what reaches Ollama (the simulator)
 * is what the policy allows, with the clamps written in; runner options a
 * policy does not list never reach it.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { DEFAULT_OPTIONS } from '../../../src/core/model-options.js';
import { errorOf, startEnv, waitFor, type GuardEnv } from './guard-env.js';

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
afterAll(async () => {
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
