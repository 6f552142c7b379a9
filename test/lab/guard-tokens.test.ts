/**
 * Peer-bound API tokens through the real tunnel to the real guard (two-box
 * mode): the `openai` npm client with `apiKey` = the token and the CA through
 * NODE_EXTRA_CA_CERTS, and a plain Python httpx script with SSL_CERT_FILE,
 * from the token's peer (c1 = alice, 10.66.0.2); refused from another peer
 * (c2 = bob, 10.66.0.3), for a peer whose policy does not allow tokens, after
 * revoke-token, after rotate-peer and after revoke-peer — and nothing refused
 * reaches the simulator. The request log says which method authenticated
 * each request; the token is in no file of the lab (logs, database, spool,
 * simulator record).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientDown, clientUp, waitFor } from './harness.js';
import { CLIENTS, GUARD_URL, addPeer, httpGet, metric, requestLog, tlsCurl, type GuardLab, type Peer, createGuardLab } from './guard-harness.js';

interface OpenAiResult { ok: boolean; chunks: number; content: string; finishReason: string | null; usage: { completion_tokens: number } | null; models: string[]; error?: string; status?: number | null; code?: string | null }
interface HttpxResult { ok: boolean; status: number; chunks?: number; content?: string; done?: boolean; evalCount?: number; models?: string[]; error?: string }

const PYTHON = '/usr/bin/python3';

describe('guard: peer-bound API tokens through the tunnel', () => {
  let gl: GuardLab;
  let alice: Peer;
  let bob: Peer;
  let c1: string;
  let c2: string;
  let token: string;
  const tokens: string[] = [];

  const issue = async (name: string): Promise<string> => {
    const r = await gl.change(() => gl.gw.cli('issue-token', name, '--json'));
    const t = (JSON.parse(r.stdout) as { token: string }).token;
    tokens.push(t);
    return t;
  };
  const openai = async (ns: string, t: string, env: Record<string, string> = { NODE_EXTRA_CA_CERTS: alice.ca }): Promise<OpenAiResult> => {
    const r = await gl.lab.exec(ns, 'node', [join(CLIENTS, 'openai-token.mjs'), '--url', GUARD_URL], { input: `${t}\n`, env, timeoutMs: 60_000 });
    const last = r.stdout.trim().split('\n').pop() ?? '';
    if (!last.startsWith('{')) throw new Error(`openai-token.mjs printed no result (exit ${r.code}): ${r.stderr}`);
    return JSON.parse(last) as OpenAiResult;
  };
  const httpx = async (ns: string, t: string): Promise<HttpxResult> => {
    const r = await gl.lab.exec(ns, PYTHON, [join(CLIENTS, 'httpx-chat.py'), '--url', GUARD_URL, '--token-stdin'], { input: `${t}\n`, env: { SSL_CERT_FILE: alice.ca }, timeoutMs: 60_000 });
    const last = r.stdout.trim().split('\n').pop() ?? '';
    if (!last.startsWith('{')) throw new Error(`httpx-chat.py printed no result (exit ${r.code}): ${r.stderr}`);
    return JSON.parse(last) as HttpxResult;
  };
  /** The Python client was answered with this status and the simulator saw nothing. */
  const refused = async (ns: string, t: string, status: number, error: string): Promise<void> => {
    const before = gl.sim.count();
    const r = await httpx(ns, t);
    expect(r, r.error).toMatchObject({ ok: false, status });
    expect(JSON.parse(r.error!)).toEqual({ error });
    expect(gl.sim.count()).toBe(before);
  };

  beforeAll(async () => {
    gl = await createGuardLab('tk');
    alice = await addPeer(gl.lab, gl.gw, 'alice');
    bob = await addPeer(gl.lab, gl.gw, 'bob');
    await gl.waitPeers(2);
    c1 = gl.lab.ns('c1');
    c2 = gl.lab.ns('c2');
    await clientUp(gl.lab, c1, 'wgtk1', alice.config);
    await clientUp(gl.lab, c2, 'wgtk2', bob.config);
  });
  afterAll(async () => {
    // TK_DEBUG=1 prints the guard's output before the lab is removed (a guard that died shows why here).
    if (process.env.TK_DEBUG) for (const f of readdirSync(gl.lab.dir).filter((x) => x.startsWith('guard-'))) console.log(f, readFileSync(join(gl.lab.dir, f), 'utf8').slice(-3000));
    await gl?.cleanup();
  });

  it('off by default: issue-token for a peer whose policy does not allow tokens exits 2 and says what to do', async () => {
    const r = await gl.gw.cli('issue-token', 'alice');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('wg-ollama: the policy of peer "alice" does not allow API tokens; run "set-policy alice --api-tokens on" first');
  });

  it('set-policy --api-tokens on, issue-token: the token works with the openai npm client (apiKey, CA via NODE_EXTRA_CA_CERTS) from its peer', async () => {
    await gl.change(() => gl.gw.cli('set-policy', 'alice', '--api-tokens', 'on'));
    token = await issue('alice');
    expect(token).toMatch(/^wgo_[A-Za-z0-9_-]{43}$/);
    const before = gl.sim.count();
    const r = await openai(c1, token);
    expect(r, r.error).toMatchObject({ ok: true, finishReason: 'stop' });
    expect(r.usage?.completion_tokens).toBe(20);
    expect(r.models).toEqual(['llama3.2:latest', 'qwen2.5:0.5b', 'nomic-embed-text:latest']);
    const arrivals = gl.sim.events().filter((e) => e.event === 'request').slice(before);
    expect(arrivals.map((e) => `${e.method} ${e.path}`)).toEqual(['POST /v1/chat/completions', 'GET /v1/models']);
    // The token stays at the guard.
    for (const a of arrivals) expect(Object.keys(a.headers ?? {})).not.toContain('authorization');
  });

  it('without NODE_EXTRA_CA_CERTS the same client does not trust the guard (the CA is what makes it work)', async () => {
    const before = gl.sim.count();
    const r = await openai(c1, token, {});
    expect(r.ok).toBe(false);
    expect(r.status ?? null).toBeNull();
    expect(gl.sim.count()).toBe(before);
  });

  it('and with the Python httpx script (SSL_CERT_FILE), streaming /api/chat', async () => {
    const r = await httpx(c1, token);
    expect(r, r.error).toMatchObject({ ok: true, status: 200, done: true, evalCount: 20 });
    expect(r.chunks).toBe(21);
  });

  it("is refused from another peer's tunnel address (401, as an unknown token), with either client", async () => {
    await refused(c2, token, 401, 'invalid API token');
    const before = gl.sim.count();
    const r = await openai(c2, token);
    expect(r).toMatchObject({ ok: false, status: 401 });
    expect(gl.sim.count()).toBe(before);
  });

  it('a peer whose policy turns tokens off loses its token: refused (401) from its own address', async () => {
    await gl.change(() => gl.gw.cli('set-policy', 'bob', '--api-tokens', 'on'));
    const bobs = await issue('bob');
    expect((await httpx(c2, bobs)).status).toBe(200);
    await gl.change(() => gl.gw.cli('set-policy', 'bob', '--api-tokens', 'off'));
    await refused(c2, bobs, 401, 'invalid API token');
    // Turning it on again revives nothing.
    await gl.change(() => gl.gw.cli('set-policy', 'bob', '--api-tokens', 'on'));
    await refused(c2, bobs, 401, 'invalid API token');
  });

  it('the request log records the method: token, certificate, or none for a refusal before identity; logs requests says "via token"', async () => {
    const cert = await tlsCurl(gl.lab, c1, { ca: alice.ca, crt: alice.crt, key: alice.key }, '/api/version');
    expect(cert.status).toBe(200);
    let rows: Awaited<ReturnType<typeof requestLog>> = [];
    await waitFor(async () => {
      rows = await requestLog(gl.gw);
      return rows.some((r) => r.path === '/api/version' && r.status === 200) && rows.filter((r) => r.refusal === 'token_invalid').length >= 2;
    }, 10_000, 'the records to reach the gateway');
    const auth = (r: (typeof rows)[number]) => (r as unknown as { auth: string | null }).auth;
    const chat = rows.filter((r) => r.path === '/v1/chat/completions' && r.status === 200);
    expect(chat.map((r) => [r.peer, r.source, auth(r), r.certSerial])).toEqual([['alice', '10.66.0.2', 'token', alice.certificateSerial]]);
    expect(rows.filter((r) => r.path === '/api/chat' && r.status === 200).map(auth)).toEqual(['token', 'token']); // alice, then bob
    expect(rows.filter((r) => r.path === '/api/version').map(auth)).toEqual(['certificate']);
    expect(rows.filter((r) => r.refusal === 'token_wrong_source').map((r) => [r.source, auth(r), r.status])).toEqual([['10.66.0.3', 'token', 401], ['10.66.0.3', 'token', 401]]);
    for (const r of rows.filter((x) => x.refusal === 'token_invalid')) expect([r.peer, auth(r), r.status]).toEqual([null, null, 401]);
    const text = await gl.gw.cli('logs', 'requests', '--since', '1h', '--peer', 'alice');
    expect(text.stdout).toMatch(/^\S+ {2}alice@10\.66\.0\.2 {2}POST \/v1\/chat\/completions .* via token$/m);
    expect(text.stdout).toMatch(/^\S+ {2}alice@10\.66\.0\.2 {2}GET \/api\/version .* via certificate$/m);
  });

  it('the guard counts token failures by reason', async () => {
    const m = await httpGet(gl.lab, gl.lab.ns('gpu'), 'http://127.0.0.1:9478/metrics');
    expect(metric(m.body, 'wgo_guard_token_failures_total', { reason: 'wrong_source' })).toBe(2);
    expect(metric(m.body, 'wgo_guard_token_failures_total', { reason: 'unknown' })).toBe(2);
  });

  it('revoke-token: refused (401); a new token works again', async () => {
    await gl.change(() => gl.gw.cli('revoke-token', 'alice'));
    await refused(c1, token, 401, 'invalid API token');
    token = await issue('alice');
    expect((await httpx(c1, token)).status).toBe(200);
  });

  it('rotate-peer: the token was bound to the old certificate — refused (401) through the new tunnel', async () => {
    const rotated = await gl.change(() => gl.gw.cli('rotate-peer', 'alice', '--json'));
    const config = (JSON.parse(rotated.stdout) as { config: string }).config;
    await clientDown(gl.lab, c1, 'wgtk1');
    await clientUp(gl.lab, c1, 'wgtk1', config);
    await refused(c1, token, 401, 'invalid API token');
    token = await issue('alice');
    expect((await httpx(c1, token)).status).toBe(200);
  });

  it('revoke-peer: the token is dead with the peer — no answer, nothing reaches the simulator', async () => {
    await gl.change(() => gl.gw.cli('revoke-peer', 'alice'));
    const before = gl.sim.count();
    const r = await httpx(c1, token);
    expect(r.ok).toBe(false);
    expect(gl.sim.count()).toBe(before);
  });

  it('no token is in any file of the lab: gateway and guard logs, the database, the spool, the simulator record', () => {
    expect(tokens).toHaveLength(4); // alice, bob, alice after revoke-token, alice after rotate-peer
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d)) {
        const p = join(d, e);
        const st = statSync(p, { throwIfNoEntry: false });
        if (st?.isDirectory()) walk(p);
        else if (st?.isFile()) files.push(p);
      }
    };
    walk(gl.lab.dir);
    expect(files.some((f) => /\.db$/.test(f))).toBe(true);
    expect(files.some((f) => f.includes('guard-'))).toBe(true);
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const t of tokens) expect(bytes.includes(Buffer.from(t.slice(4))), `${t.slice(0, 8)}… in ${f}`).toBe(false);
    }
  });
});
