/**
 * A refusal sent before the request body was read (401 revoked, 403, 429):
 * a client still uploading a large body must read the guard's JSON answer,
 * not a connection reset (the kernel resets a socket closed with unread
 * data), and nothing reaches Ollama.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { errorOf, startEnv, type GuardEnv } from '../../support/guard-env.js';

let env: GuardEnv;
beforeAll(async () => {
  env = await startEnv({ peers: [{ name: 'alice', address: '127.0.0.1' }, { name: 'bob', address: '127.0.0.2', policy: { requestsPerMinute: 1, burst: 1 } }] });
});
afterAll(async () => {
  await env?.close();
});

const big = (mb: number): string => JSON.stringify({ model: 'llama3.2', input: 'x'.repeat(mb * 1024 * 1024) });

describe('refused before the body was read', () => {
  test.each([1, 2, 4])("a revoked peer's %i MiB upload gets the guard's 401 JSON every time, not a reset", async (mb) => {
    env.guard.setPeers(env.peerSet({ without: ['alice'] }));
    try {
      for (let i = 0; i < 5; i++) {
        const r = await env.request('alice', { path: '/api/embed', body: big(mb) });
        expect(r.status).toBe(401);
        expect(errorOf(r)).toMatch(/revoked/);
      }
      expect(env.sim.requests).toEqual([]);
    } finally {
      env.guard.setPeers(env.peerSet());
    }
  });

  test('rate-limited uploads get 429 JSON every time; the connection stays usable', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await env.request('bob', { path: '/api/embed', body: big(2), localAddress: '127.0.0.2' })).status);
    expect(statuses).toEqual([200, 429, 429, 429]);
  });
});
