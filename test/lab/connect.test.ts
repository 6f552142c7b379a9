/**
 * The last mile on a laptop, for real: the laptop namespace has the tunnel up
 * (wg-quick from add-peer's config) and runs the connector *artefact* that
 * add-peer --out handed out (the bundled wg-ollama-connect.mjs and the
 * NAME.connect.json profile, copied to a directory with no node_modules, run
 * as an unprivileged user). Then clients nobody here wrote, with no
 * certificate configuration at all — the `ollama` and `openai` npm clients,
 * @langchain/ollama, the Vercel ai SDK with an Ollama provider, a plain
 * Python httpx script and curl — stream through it to the guard and the
 * simulator in the GPU namespace. Refusals come back as the guard's JSON and
 * reach nothing; revocation cuts a stream as it does a direct client; a
 * profile used from the wrong tunnel and a tunnel that is down are told
 * apart by --check and by the answers.
 */
import { copyFileSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientDown, clientUp, waitFor } from './harness.js';
import {
  CLIENTS, addPeer, createGuardLab, parseCurl, requestLog, tlsCurl,
  type Bg, type GuardLab, type Peer, type SimEvent,
} from './guard-harness.js';

const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const LOCAL = 'http://127.0.0.1:11434';

interface ClientResult { ok: boolean; chunks?: number; content?: string; done?: boolean; evalCount?: number; models?: string[]; finishReason?: string; error?: string; status?: number | null }
interface StreamEvent { event: 'first' | 'end'; at: number; reason?: string; chunks?: number; lastChunkAt?: number | null }
interface CheckReport { ok: boolean; peer: string; guard: { reachable: boolean; accepted: boolean; status: number | null; version: string | null; error: string | null }; listen: { free: boolean } }

describe('connect: unmodified clients on a laptop, through the shipped connector and the tunnel', () => {
  let gl: GuardLab;
  let alice: Peer & { connectCommand: string };
  let bob: Peer;
  let c1: string;
  let laptop: string;
  let connector: Bg;
  const arrivals = (): SimEvent[] => gl.sim.events().filter((e) => e.event === 'request');

  /** Runs a command in the laptop namespace as an unprivileged user (nobody). */
  const asNobody = (cmd: string, args: string[], o: { input?: string; timeoutMs?: number } = {}) =>
    gl.lab.exec(c1, 'setpriv', [...NOBODY, cmd, ...args], o);
  const client = async (name: string): Promise<ClientResult> => {
    const r = await asNobody('node', [join(CLIENTS, 'local-ollama.mjs'), '--client', name], { timeoutMs: 60_000 });
    const last = r.stdout.trim().split('\n').pop() ?? '';
    if (!last.startsWith('{')) throw new Error(`${name} printed no result (exit ${r.code}): ${r.stderr}`);
    return JSON.parse(last) as ClientResult;
  };
  const localCurl = async (path: string, extra: string[] = []) =>
    parseCurl(await gl.lab.exec(c1, 'curl', ['-s', '-S', '-i', '-N', '--http1.1', '-m', '20', ...extra, `${LOCAL}${path}`], { timeoutMs: 30_000 }));
  const check = async (profile: string): Promise<{ code: number; report: CheckReport }> => {
    const r = await asNobody('node', [join(laptop, 'wg-ollama-connect.mjs'), profile, '--check', '--json'], { timeoutMs: 30_000 });
    return { code: r.code, report: JSON.parse(r.stdout) as CheckReport };
  };

  beforeAll(async () => {
    gl = await createGuardLab('cn', { simArgs: ['--token-rate', '200'] });
    alice = (await addPeer(gl.lab, gl.gw, 'alice')) as Peer & { connectCommand: string };
    bob = await addPeer(gl.lab, gl.gw, 'bob');
    await gl.change(() => gl.gw.cli('set-policy', 'alice', '--models', 'llama3.2,nomic-embed-text'));
    c1 = gl.lab.ns('c1');
    await clientUp(gl.lab, c1, 'wgccn1', alice.config);
    // What the person got from the admin, on a laptop: two files in a directory of their own,
    // far from this repository's node_modules, owned by an ordinary user.
    laptop = mkdtempSync(join(tmpdir(), 'wgo-laptop-'));
    const out = join(gl.lab.dir, `peers-${gl.gw.iface}`);
    for (const f of ['alice.connect.json', 'bob.connect.json', 'wg-ollama-connect.mjs']) copyFileSync(join(out, f), join(laptop, f));
    for (const f of ['', 'alice.connect.json', 'bob.connect.json', 'wg-ollama-connect.mjs']) chownSync(join(laptop, f), 65534, 65534);
    connector = gl.procs.spawn(c1, 'setpriv', [...NOBODY, 'node', join(laptop, 'wg-ollama-connect.mjs'), join(laptop, 'alice.connect.json')], 'connect');
    await waitFor(() => {
      if (connector.exited()) throw new Error(`the connector exited: ${readFileSync(`${connector.out}.err`, 'utf8')}`);
      return existsSync(`${connector.out}.err`) && readFileSync(`${connector.out}.err`, 'utf8').includes(`can now use ${LOCAL}`);
    }, 10_000, 'the connector to listen');
  });
  afterAll(async () => {
    await gl?.cleanup();
    if (laptop) rmSync(laptop, { recursive: true, force: true });
  });

  it('add-peer --out handed out the profile (0600) and the connector, and printed the one command to run', () => {
    const out = join(gl.lab.dir, `peers-${gl.gw.iface}`);
    expect(alice.files).toEqual(expect.arrayContaining([join(out, 'alice.connect.json'), join(out, 'wg-ollama-connect.mjs')]));
    expect(statSync(join(out, 'alice.connect.json')).mode & 0o077).toBe(0);
    expect(alice.connectCommand).toBe('node wg-ollama-connect.mjs alice.connect.json');
    expect(JSON.parse(readFileSync(join(out, 'alice.connect.json'), 'utf8'))).toMatchObject({ wgOllamaConnect: 1, peer: 'alice', guardUrl: 'https://198.51.100.10:11434' });
  });

  it('connect --check: the tunnel is up and the guard accepts the certificate', async () => {
    const { code, report } = await check(join(laptop, 'alice.connect.json'));
    expect(report).toMatchObject({ ok: true, peer: 'alice', guard: { reachable: true, accepted: true, status: 200, version: '0.12.6' } });
    expect(report.listen.free).toBe(false); // the connector itself holds the port
    expect(code).toBe(0);
  });

  it.each(['ollama', 'openai', 'langchain', 'ai-sdk'])('the %s client, with its defaults, streams an answer', async (name) => {
    const before = arrivals().length;
    const r = await client(name);
    expect(r, r.error).toMatchObject({ ok: true });
    expect(r.chunks).toBeGreaterThanOrEqual(20);
    expect(r.content).toMatch(/The sky is blue/);
    const mine = arrivals().slice(before);
    expect(mine.length).toBeGreaterThan(0);
    // Whatever API key or credential the client sent stays on the laptop.
    for (const e of mine) expect(e.headers?.authorization).toBeUndefined();
    if (name === 'ollama') expect(r.models).toEqual(['llama3.2:latest', 'nomic-embed-text:latest']);
    if (name === 'openai') expect(r.models).toEqual(['llama3.2:latest', 'nomic-embed-text:latest']);
  });

  it('a plain Python script on httpx streams NDJSON from the default address', async () => {
    const r = await asNobody('/usr/bin/python3', [join(CLIENTS, 'httpx-chat.py')], { timeoutMs: 30_000 });
    const res = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as ClientResult;
    expect(res, r.stderr).toMatchObject({ ok: true, status: 200, done: true, evalCount: 20, models: ['llama3.2:latest', 'nomic-embed-text:latest'] });
    expect(res.chunks).toBe(21);
  });

  it('curl streams /api/generate, and the probes / and HEAD / answer as Ollama does', async () => {
    const g = await localCurl('/api/generate', ['-d', '{"model":"llama3.2","prompt":"hi"}']);
    const lines = g.body.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { done: boolean; eval_count?: number });
    expect(g.status).toBe(200);
    expect(lines).toHaveLength(21);
    expect(lines.at(-1)).toMatchObject({ done: true, eval_count: 20 });
    const root = await localCurl('/');
    expect([root.status, root.body]).toEqual([200, 'Ollama is running']);
    const head = await localCurl('/', ['-I']);
    expect(head.status).toBe(200);
  });

  it('every request was the peer\'s own: the gateway\'s log names alice, from her tunnel address', async () => {
    await waitFor(async () => (await requestLog(gl.gw)).filter((r) => r.peer === 'alice' && r.status === 200).length >= 8, 10_000, 'the records');
    const mine = (await requestLog(gl.gw)).filter((r) => r.status === 200);
    expect(new Set(mine.map((r) => r.peer))).toEqual(new Set(['alice']));
    expect(new Set(mine.map((r) => r.certSerial))).toEqual(new Set([alice.certificateSerial]));
  });

  it.each([
    ['a model outside the allowlist', '/api/chat', '{"model":"qwen2.5:0.5b","messages":[]}', 403],
    ['pull', '/api/pull', '{"model":"llama3.2"}', 403],
  ])('%s: the guard\'s JSON refusal, byte for byte as a direct client gets it; nothing reaches Ollama', async (_what, path, data, status) => {
    const before = arrivals().length;
    const via = await localCurl(path, ['-d', data]);
    const direct = await tlsCurl(gl.lab, c1, { ca: alice.ca, crt: alice.crt, key: alice.key }, path, { data });
    expect(via.status).toBe(status);
    expect(via.body).toBe(direct.body);
    expect(via.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(JSON.parse(via.body)).toEqual({ error: expect.any(String) });
    expect(arrivals().length).toBe(before);
  });

  it("bob's profile used in alice's tunnel: the guard's 403 comes through, and --check says the certificate is not accepted", async () => {
    const { code, report } = await check(join(laptop, 'bob.connect.json'));
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, guard: { reachable: true, accepted: false, status: 403 } });
    expect(report.guard.error).toBe(`the guard does not accept this certificate: client certificate belongs to ${bob.address}, not to ${alice.address}`);
  });

  it('revoke mid-stream: the stream stops at the connector\'s client within 1 s, as it does for a direct client; Ollama sees it aborted', async () => {
    const s = gl.procs.spawn(c1, 'node', [join(CLIENTS, 'stream.mjs'), '--url', LOCAL, '--tokens', '3000', '--idle-ms', '2500'], 'stream');
    await waitFor(() => s.json<StreamEvent>().some((e) => e.event === 'first'), 10_000, 'the stream to flow');
    await new Promise((r) => setTimeout(r, 300));
    const mine = arrivals().filter((e) => e.path === '/api/generate').pop()!;
    const r = await gl.gw.cli('revoke-peer', 'alice');
    const t0 = Date.now();
    expect(r.code, r.stderr).toBe(0);
    let end: StreamEvent | undefined;
    await waitFor(() => !!(end = s.json<StreamEvent>().find((e) => e.event === 'end')), 10_000, 'the client to see the end');
    expect(end!.reason).not.toBe('complete');
    expect(end!.lastChunkAt! - t0).toBeLessThan(1000);
    await waitFor(() => gl.sim.events().some((e) => e.event === 'end' && e.id === mine.id), 5000, 'Ollama to see the end');
    expect(gl.sim.events().find((e) => e.event === 'end' && e.id === mine.id)).toMatchObject({ aborted: true });
  });

  it('after revoke the tunnel itself is gone: the next request is a 502 naming the guard and the tunnel, and --check fails', async () => {
    const before = arrivals().length;
    const r = await localCurl('/api/tags');
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body)).toEqual({ error: expect.stringMatching(/^cannot reach the wg-ollama guard at https:\/\/198\.51\.100\.10:11434 \(.+\): is the WireGuard tunnel up\? .*your peer was disabled or revoked/) });
    const { code, report } = await check(join(laptop, 'alice.connect.json'));
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false, guard: { reachable: false, accepted: false } });
    expect(arrivals().length).toBe(before);
  });

  it('with the tunnel down, the same 502 comes from the connector at once it gives up connecting', async () => {
    await clientDown(gl.lab, c1, 'wgccn1');
    const r = await localCurl('/api/version');
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body).error).toMatch(/is the WireGuard tunnel up\?/);
    expect(connector.exited()).toBe(false);
  });
});
