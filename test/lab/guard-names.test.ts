/**
 * Model names and writes through the real tunnel, set with the real CLI (issue
 * 10, items 5 and 8): names Ollama would read differently are refused 400
 * before any allowlist, and pull/copy/delete, once a peer's endpoints allow
 * them, reach Ollama only for names in its writeModels. No refusal reaches the
 * simulator.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientUp, waitFor } from './harness.js';
import { addPeer, createGuardLab, requestLog, tlsCurl, type Creds, type GuardLab, type HttpResult, type Peer } from './guard-harness.js';

describe('guard: model names and the write allowlist through the tunnel', () => {
  let gl: GuardLab;
  let alice: Peer;
  let c1: string;
  const as = (p: Peer): Creds => ({ ca: p.ca, crt: p.crt, key: p.key });
  const policy = (name: string, ...flags: string[]) => gl.change(() => gl.gw.cli('set-policy', name, ...flags));
  const send = (path: string, body: unknown, method?: string) => tlsCurl(gl.lab, c1, as(alice), path, { data: JSON.stringify(body), ...(method ? { method } : {}) });

  const refused = async (r: () => Promise<HttpResult>, status: number, error: RegExp | string): Promise<void> => {
    const before = gl.sim.count();
    const res = await r();
    expect(res.status, `${res.stderr} ${res.body}`).toBe(status);
    const e = (res.json() as { error: string }).error;
    if (typeof error === 'string') expect(e).toBe(error);
    else expect(e).toMatch(error);
    expect(gl.sim.count()).toBe(before);
  };

  beforeAll(async () => {
    gl = await createGuardLab('nm');
    alice = await addPeer(gl.lab, gl.gw, 'alice');
    await gl.waitPeers(1);
    c1 = gl.lab.ns('c1');
    await clientUp(gl.lab, c1, 'wgcnm1', alice.config);
  });
  afterAll(async () => {
    await gl?.cleanup();
  });

  it('with no allowlist at all, names that are no Ollama name are refused 400 and never forwarded', async () => {
    await refused(() => send('/api/generate', { model: '../../x', prompt: 'hi' }), 400, /^invalid model name "\.\.\/\.\.\/x": the host "\.\." is not valid/);
    await refused(() => send('/api/chat', { model: 'llama3.2\u0000', messages: [] }), 400, /control character/);
    await refused(() => send('/api/show', { model: `llama3.2@sha256:${'a'.repeat(64)}` }), 400, /digest/);
    await refused(() => send('/api/generate', { model: 'registry.ollama.ai/llama3.2', prompt: 'hi' }), 400, /namespace "registry\.ollama\.ai" is not valid/);
    // the control (the simulator knows names only as written, so the short form)
    const ok = await send('/api/generate', { model: 'llama3.2', prompt: 'hi', stream: false });
    expect(ok.status).toBe(200);
  });

  it('pull and copy allowed by endpoints but not by writeModels: 403 write_denied naming the policy field', async () => {
    await policy('alice', '--endpoints', 'generate,chat,show,tags,version,pull,copy,delete');
    await refused(() => send('/api/pull', { model: 'llama3.2' }), 403, 'model "llama3.2" may not be created, overwritten, deleted, pulled or pushed by this peer (policy field writeModels)');
    await refused(() => send('/api/copy', { source: 'llama3.2', destination: 'alice/mine' }), 403, /writeModels/);
  });

  it('--write-models alice/*: copies into her namespace reach Ollama, over a shared model they do not', async () => {
    await policy('alice', '--write-models', 'alice/*');
    const before = gl.sim.count();
    expect((await send('/api/copy', { source: 'llama3.2', destination: 'alice/mine' })).status).toBe(200);
    expect((await send('/api/delete', { model: 'alice/mine' }, 'DELETE')).status).toBe(200);
    expect(gl.sim.count()).toBe(before + 2);
    await refused(() => send('/api/copy', { source: 'alice/mine', destination: 'llama3.2' }), 403, /writeModels/);
    await refused(() => send('/api/delete', { model: 'llama3.2' }, 'DELETE'), 403, /writeModels/);
    await refused(() => send('/api/pull', { model: 'evil.io/alice/x' }), 403, /writeModels/);
  });

  it('the gateway recorded the refusals with their reasons, and served names in their shortest form', async () => {
    let rows = await requestLog(gl.gw);
    const done = async () => {
      rows = await requestLog(gl.gw);
      return rows.filter((r) => r.refusal === 'write_denied').length >= 5 && rows.filter((r) => r.refusal === 'bad_model').length >= 4;
    };
    await waitFor(done, 5000, 'the refusals in the request log');
    expect(rows.filter((r) => r.refusal === 'bad_model')).toHaveLength(4);
    expect(rows.filter((r) => r.refusal === 'write_denied')).toHaveLength(5);
    expect(rows.filter((r) => r.refusal === null).map((r) => r.model)).toEqual(expect.arrayContaining(['llama3.2:latest']));
  });
});
