/**
 * Per-peer policy set with the CLI and enforced by the real guard, through
 * the real tunnel: a model allowlist on the native and /v1 surfaces (lists
 * filtered), a daily token budget, a request rate, a disabled peer. Every
 * refusal has its exact answer and never reaches the simulator.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientUp, waitFor } from './harness.js';
import {
  addPeer, clientArgs, createGuardLab, requestLog, runClient, tlsCurl,
  type Creds, type GuardLab, type HttpResult, type Peer,
} from './guard-harness.js';

const chat = (model: string): string => JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], stream: false });

describe('guard: per-peer policy through the tunnel', () => {
  let gl: GuardLab;
  let alice: Peer;
  let bob: Peer;
  let c1: string;
  let c2: string;
  const as = (p: Peer): Creds => ({ ca: p.ca, crt: p.crt, key: p.key });
  const policy = (name: string, ...flags: string[]) => gl.change(() => gl.gw.cli('set-policy', name, ...flags));

  const refused = async (send: () => Promise<HttpResult>, status: number, error: string): Promise<HttpResult> => {
    const before = gl.sim.count();
    const r = await send();
    expect(r.status, `${r.stderr} ${r.body}`).toBe(status);
    expect(r.json()).toEqual({ error });
    expect(gl.sim.count()).toBe(before);
    return r;
  };

  beforeAll(async () => {
    gl = await createGuardLab('gp');
    alice = await addPeer(gl.lab, gl.gw, 'alice');
    bob = await addPeer(gl.lab, gl.gw, 'bob');
    await gl.waitPeers(2);
    c1 = gl.lab.ns('c1');
    c2 = gl.lab.ns('c2');
    await clientUp(gl.lab, c1, 'wgcgp1', alice.config);
    await clientUp(gl.lab, c2, 'wgcgp2', bob.config);
  });
  afterAll(async () => {
    await gl?.cleanup();
  });

  describe('a model allowlist (set-policy alice --models qwen2.5:0.5b)', () => {
    beforeAll(async () => {
      expect((await tlsCurl(gl.lab, c1, as(alice), '/api/chat', { data: chat('llama3.2') })).status).toBe(200);
      await policy('alice', '--models', 'qwen2.5:0.5b');
    });

    it('native /api/chat and /api/generate with another model: 403', async () => {
      await refused(() => tlsCurl(gl.lab, c1, as(alice), '/api/chat', { data: chat('llama3.2') }), 403, 'model "llama3.2" is not allowed for this peer');
      await refused(() => tlsCurl(gl.lab, c1, as(alice), '/api/generate', { data: '{"model":"LLAMA3.2:latest","prompt":"x"}' }), 403, 'model "LLAMA3.2:latest" is not allowed for this peer');
      await refused(() => tlsCurl(gl.lab, c1, as(alice), '/api/embed', { data: '{"model":"nomic-embed-text","input":"x"}' }), 403, 'model "nomic-embed-text" is not allowed for this peer');
    });

    it('a second, case-folded "model" key that Ollama would read instead: 400', async () => {
      await refused(() => tlsCurl(gl.lab, c1, as(alice), '/api/chat', { data: '{"model":"qwen2.5:0.5b","Model":"llama3.2","messages":[]}' }), 400, 'field "Model" is not accepted, use "model"');
    });

    it('/v1/chat/completions with another model: 403, also for the openai client', async () => {
      await refused(() => tlsCurl(gl.lab, c1, as(alice), '/v1/chat/completions', { data: chat('llama3.2') }), 403, 'model "llama3.2" is not allowed for this peer');
      await refused(() => tlsCurl(gl.lab, c1, as(alice), '/v1/models/llama3.2'), 404, 'model "llama3.2" not found');
      const before = gl.sim.count();
      const r = await runClient<{ ok: boolean; status: number; error: string }>(gl.lab, c1, 'openai-chat.mjs', clientArgs(as(alice)));
      expect(r).toMatchObject({ ok: false, status: 403 });
      expect(r.error).toContain('model "llama3.2" is not allowed for this peer');
      expect(gl.sim.count()).toBe(before);
    });

    it('the allowed model works on both surfaces, and /api/tags and /v1/models list only it', async () => {
      const r = await runClient<{ ok: boolean; models: string[]; evalCount: number }>(gl.lab, c1, 'ollama-chat.mjs', [...clientArgs(as(alice)), '--model', 'qwen2.5:0.5b']);
      expect(r).toMatchObject({ ok: true, evalCount: 20, models: ['qwen2.5:0.5b'] });
      const o = await runClient<{ ok: boolean; models: string[] }>(gl.lab, c1, 'openai-chat.mjs', [...clientArgs(as(alice)), '--model', 'qwen2.5:0.5b']);
      expect(o).toMatchObject({ ok: true, models: ['qwen2.5:0.5b'] });
      const tags = await tlsCurl(gl.lab, c1, as(alice), '/api/tags');
      expect((tags.json().models as { name: string }[]).map((m) => m.name)).toEqual(['qwen2.5:0.5b']);
      // bob has no allowlist: he sees everything.
      const all = await tlsCurl(gl.lab, c2, as(bob), '/api/tags');
      expect((all.json().models as { name: string }[]).map((m) => m.name)).toEqual(['llama3.2:latest', 'qwen2.5:0.5b', 'nomic-embed-text:latest']);
    });

    afterAll(async () => {
      await policy('alice', '--reset');
    });
  });

  describe('a daily token budget (set-policy alice --tokens-per-day N)', () => {
    it('the request that uses it up is served (counted from Ollama\'s usage, asked for by the guard), the next one gets 429 with Retry-After until UTC midnight', async () => {
      // Today's use so far, as the gateway has it from the guard's records: one more token is left.
      await waitFor(async () => (await gl.health()).spooled === 0, 5000, 'the records to reach the gateway');
      const used = (await requestLog(gl.gw)).filter((r) => r.peer === 'alice').reduce((n, r) => n + (r.promptTokens ?? 0) + (r.evalTokens ?? 0), 0);
      expect(used).toBeGreaterThan(0);
      const budget = used + 1;
      // A stream may go past the budget by maxTokensPerRequest (it is cut beyond: guard-budget.test.ts).
      await policy('alice', '--tokens-per-day', String(budget), '--max-tokens-per-request', '1000');
      const first = await tlsCurl(gl.lab, c1, as(alice), '/v1/chat/completions', { data: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 20 }) });
      expect(first.status).toBe(200);
      expect(first.body).toContain('"usage":{"prompt_tokens"');
      const arrived = gl.sim.events().filter((e) => e.event === 'request').pop()!;
      expect(arrived.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });

      const r = await refused(() => tlsCurl(gl.lab, c1, as(alice), '/api/generate', { data: '{"model":"llama3.2","prompt":"more"}' }), 429, `daily token budget of ${budget} used up`);
      const midnight = new Date();
      midnight.setUTCHours(24, 0, 0, 0);
      expect(Math.abs(Number(r.headers['retry-after']) - (midnight.getTime() - Date.now()) / 1000)).toBeLessThan(5);
      await refused(() => tlsCurl(gl.lab, c1, as(alice), '/api/embed', { data: '{"model":"nomic-embed-text","input":"x"}' }), 429, `daily token budget of ${budget} used up`);
      // Listing models is not inference: still answered.
      expect((await tlsCurl(gl.lab, c1, as(alice), '/api/tags')).status).toBe(200);
    });

    it('raising the budget lets the peer in again at once', async () => {
      await policy('alice', '--tokens-per-day', 'unlimited', '--max-tokens-per-request', 'none');
      expect((await tlsCurl(gl.lab, c1, as(alice), '/api/generate', { data: '{"model":"llama3.2","prompt":"more","stream":false}' })).status).toBe(200);
    });
  });

  describe('a request rate (set-policy bob --rate 2 --burst 2)', () => {
    it('two requests back to back are served, the third gets 429 with Retry-After', async () => {
      await policy('bob', '--rate', '2', '--burst', '2');
      expect((await tlsCurl(gl.lab, c2, as(bob), '/api/version')).status).toBe(200);
      expect((await tlsCurl(gl.lab, c2, as(bob), '/api/version')).status).toBe(200);
      const r = await refused(() => tlsCurl(gl.lab, c2, as(bob), '/api/version'), 429, 'rate limit exceeded');
      const after = Number(r.headers['retry-after']);
      expect(after).toBeGreaterThanOrEqual(1);
      expect(after).toBeLessThanOrEqual(30);
      // alice has her own bucket.
      expect((await tlsCurl(gl.lab, c1, as(alice), '/api/version')).status).toBe(200);
    });
  });

  describe('a disabled peer', () => {
    it('loses the tunnel, and its certificate is refused from any other tunnel; enabled, the certificate is good again', async () => {
      const r = await gl.change(() => gl.gw.cli('disable-peer', 'bob'));
      expect(r.code).toBe(0);
      const before = gl.sim.count();
      const cut = await tlsCurl(gl.lab, c2, as(bob), '/api/version', { timeoutSec: 2 });
      expect(cut.status).toBe(0);
      expect(cut.code).toBe(28); // no answer at all: the tunnel is gone
      await refused(() => tlsCurl(gl.lab, c1, as(bob), '/api/version'), 401, 'client certificate is revoked or belongs to no active peer');
      expect(gl.sim.count()).toBe(before);

      // Enabled: the guard knows the certificate again (from alice's tunnel it is now the wrong address, not an unknown certificate).
      await gl.change(() => gl.gw.cli('enable-peer', 'bob'));
      await refused(() => tlsCurl(gl.lab, c1, as(bob), '/api/version'), 403, 'client certificate belongs to 10.66.0.3, not to 10.66.0.2');
    });
  });

  it('the gateway recorded each refusal with its reason', async () => {
    const want = ['model_denied', 'token_budget', 'rate_limited', 'auth_revoked', 'ambiguous_field'];
    let rows = await requestLog(gl.gw);
    await waitFor(async () => {
      rows = await requestLog(gl.gw);
      return want.every((w) => rows.some((r) => r.refusal === w)) && rows.length >= gl.sim.count();
    }, 5000, 'the refusal records');
    const count = (reason: string): number => rows.filter((r) => r.refusal === reason).length;
    expect(count('model_denied')).toBe(6);
    expect(count('token_budget')).toBe(2);
    expect(count('rate_limited')).toBe(1);
    expect(rows.filter((r) => r.refusal === null)).toHaveLength(gl.sim.count());
    expect(rows.find((r) => r.refusal === 'token_budget')).toMatchObject({ peer: 'alice', status: 429, endpoint: 'generate' }); // refused before the body is read: no model
  });
});
