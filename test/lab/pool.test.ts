/**
 * Issue 14: a pool of GPU hosts behind one address, in the namespace lab. The gateway (serve, sync
 * API) in gw; the router (`add-guard --router`) at ollamaHost in gpu; three GPU hosts h1, h2, h3,
 * each a namespace on the LAN with its own guard (`add-guard --member --parallel N`) and the
 * Ollama simulator serving a different set of models. Peers reach the one URL through the real
 * tunnel with curl and the `ollama` and `openai` npm clients; the simulators' record files prove
 * where each request went. Everything is real: processes, mTLS between router and members,
 * WireGuard, iptables.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPU, ROOT, clientUp, createGateway, createLab, waitFor, type Gateway, type Lab } from './harness.js';
import {
  BIN, GUARD_URL, SYNC_LISTEN, addPeer, clientArgs, httpGet, metric, processes, requestLog, runClient, startSim, tlsCurl,
  type Bg, type Creds, type HttpResult, type Peer, type Processes, type RequestRow, type Sim,
} from './guard-harness.js';

const LAB = join(ROOT, 'scripts/lab.sh');
/** The simulators answer 20 tokens at 40 a second: one generation slot is 0.5 s. */
const SLOT_MS = 500;
const HOSTS = [
  { name: 'h1', ip: '198.51.100.31', models: ['llama3.2', 'qwen2.5'], parallel: 2 },
  { name: 'h2', ip: '198.51.100.32', models: ['llama3.2', 'mistral'], parallel: 2 },
  { name: 'h3', ip: '198.51.100.33', models: ['phi3'], parallel: 1 },
] as const;
type HostName = (typeof HOSTS)[number]['name'];

interface PoolHealth {
  ok: boolean;
  peers: number;
  spooled: number;
  pool?: { hosts: { name: string; health: string; draining: boolean; inFlight: number; queued: number }[]; queued: number };
}
type Row = RequestRow & { host: string | null; queueMs: number | null; estimatedTokens: number | null };
const charged = (r: Row): number => r.estimatedTokens ?? (r.promptTokens ?? 0) + (r.evalTokens ?? 0);
const as = (p: Peer): Creds => ({ ca: p.ca, crt: p.crt, key: p.key });
const body = (model: string, o: Record<string, unknown> = {}): string => JSON.stringify({ model, prompt: 'x', stream: false, ...o });

describe('a pool of three GPU hosts behind one address', () => {
  let lab: Lab;
  let procs: Processes;
  let gw: Gateway;
  let alice: Peer;
  let bob: Peer;
  let c1: string;
  let c2: string;
  const sims = {} as Record<HostName, Sim>;
  const guards = {} as Record<HostName, Bg>;
  const dirs = {} as Record<HostName | 'edge', string>;
  let router: Bg;
  const hostNs = (h: HostName): string => `${lab.prefix}-${h}`;
  /** Generations that reached a host's Ollama. */
  const generations = (h: HostName): number => sims[h].events().filter((e) => e.event === 'request' && (e.path === '/api/generate' || e.path === '/api/chat' || e.path === '/v1/chat/completions')).length;
  const health = async (): Promise<PoolHealth> => JSON.parse((await httpGet(lab, lab.ns('gpu'), 'http://127.0.0.1:9478/healthz')).body) as PoolHealth;
  const hostHealth = async (h: HostName): Promise<string | undefined> => (await health().catch(() => null))?.pool?.hosts.find((x) => x.name === h)?.health;
  const generate = (p: Peer, ns: string, model: string, o: Record<string, unknown> = {}, timeoutSec = 3): Promise<HttpResult> =>
    tlsCurl(lab, ns, as(p), '/api/generate', { data: body(model, o), timeoutSec });

  const startGuard = async (ns: string, config: string, tag: string): Promise<Bg> => {
    const g = procs.spawn(ns, 'node', [BIN, 'guard', '--config', config], tag);
    await waitFor(async () => {
      if (g.exited()) throw new Error(`guard ${tag} exited: ${readFileSync(`${g.out}.err`, 'utf8')}${readFileSync(g.out, 'utf8')}`);
      const r = await httpGet(lab, ns, 'http://127.0.0.1:9478/healthz');
      return r.status === 200 && (JSON.parse(r.body) as { ok: boolean }).ok;
    }, 15_000, `guard ${tag} to serve`);
    return g;
  };
  const startMember = async (h: HostName): Promise<void> => {
    guards[h] = await startGuard(hostNs(h), join(dirs[h], 'guard.json'), `guard-${h}`);
  };
  const allHealthy = (): Promise<number> =>
    waitFor(async () => (await health().catch(() => null))?.pool?.hosts.filter((h) => h.health === 'healthy').length === HOSTS.length, 20_000, 'every GPU host healthy at the router');

  beforeAll(async () => {
    lab = await createLab('pl', { gpuListener: false });
    procs = processes(lab);
    gw = await createGateway(lab, 'wgopl', ['--sync-listen', SYNC_LISTEN]);
    // The GPU hosts' addresses are outside what the config implies: permitted in the CA first (README, "Guards on other hosts").
    writeFileSync(gw.configFile, JSON.stringify({ ...JSON.parse(readFileSync(gw.configFile, 'utf8')), ca: { permit: ['198.51.100.0/24'] } }, null, 2));
    const reissued = await gw.cli('reissue-ca');
    expect(reissued.code, reissued.stderr).toBe(0);
    await gw.start();
    for (const h of HOSTS) {
      await execa(LAB, ['host', lab.prefix, h.name, h.ip]);
      dirs[h.name] = join(lab.dir, h.name);
      const added = await gw.cli('add-guard', h.name, '--address', h.ip, '--member', '--parallel', String(h.parallel), '--out', dirs[h.name]);
      expect(added.code, added.stderr).toBe(0);
      sims[h.name] = await startSim(lab, procs, hostNs(h.name), ['--models', h.models.join(','), '--token-rate', '40', '--tokens', '20']);
      await startMember(h.name);
    }
    dirs.edge = join(lab.dir, 'edge');
    const added = await gw.cli('add-guard', 'edge', '--address', GPU, '--router', '--out', dirs.edge);
    expect(added.code, added.stderr).toBe(0);
    // Room for one peer's 20 queued generations (the default is 8 per peer).
    const file = join(dirs.edge, 'guard.json');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), pool: { role: 'router', queue: { perPeer: 32, total: 64, maxWaitSec: 60 } } }, null, 2));
    router = await startGuard(lab.ns('gpu'), file, 'router');
    await allHealthy();

    alice = await addPeer(lab, gw, 'alice');
    bob = await addPeer(lab, gw, 'bob');
    expect((await gw.cli('set-policy', 'alice', '--models', 'llama3.2,qwen2.5,phi3')).code).toBe(0);
    expect((await gw.cli('set-policy', 'bob', '--streams', '32', '--rate', '1000', '--burst', '100')).code).toBe(0);
    await waitFor(async () => (await health()).peers === 2, 10_000, 'the router to enforce both peers');
    c1 = lab.ns('c1');
    c2 = lab.ns('c2');
    await clientUp(lab, c1, 'wgcpl1', alice.config);
    await clientUp(lab, c2, 'wgcpl2', bob.config);
  }, 120_000);
  afterAll(async () => {
    await procs?.stopAll();
    await lab?.cleanup();
  });

  it('the firewall keeps its promise: from the tunnel, the router’s address and port only, no GPU host', async () => {
    expect((await tlsCurl(lab, c1, as(alice), '/api/version')).status).toBe(200);
    for (const h of HOSTS) {
      const r = await tlsCurl(lab, c1, as(alice), '/api/version', { base: `https://${h.ip}:11434`, timeoutSec: 1 });
      expect(r.status, h.name).toBe(0);
    }
  });

  it('each model lands on a host that has it; /api/tags is the merged list, filtered by the peer’s policy', async () => {
    const before = { h1: generations('h1'), h2: generations('h2'), h3: generations('h3') };
    const qwen = await runClient<{ ok: boolean; evalCount: number; models: string[] }>(lab, c1, 'ollama-chat.mjs', [...clientArgs(as(alice)), '--model', 'qwen2.5']);
    expect(qwen).toMatchObject({ ok: true, evalCount: 20 });
    expect(qwen.models.sort()).toEqual(['llama3.2:latest', 'phi3:latest', 'qwen2.5:latest']);
    const mistral = await runClient<{ ok: boolean }>(lab, c2, 'openai-chat.mjs', [...clientArgs(as(bob)), '--model', 'mistral']);
    expect(mistral).toMatchObject({ ok: true });
    expect((await generate(alice, c1, 'phi3')).status).toBe(200);
    expect({ h1: generations('h1') - before.h1, h2: generations('h2') - before.h2, h3: generations('h3') - before.h3 }).toEqual({ h1: 1, h2: 1, h3: 1 });
    // bob may use any model: he sees all four, merged
    const tags = await tlsCurl(lab, c2, as(bob), '/api/tags');
    expect((tags.json().models as { name: string }[]).map((m) => m.name).sort()).toEqual(['llama3.2:latest', 'mistral:latest', 'phi3:latest', 'qwen2.5:latest']);
    // a model no host has is Ollama's 404; one alice may not use never leaves the router
    expect((await generate(bob, c2, 'gemma2')).status).toBe(404);
    const denied = await generate(alice, c1, 'mistral');
    expect(denied.status).toBe(403);
    expect(generations('h2') - before.h2).toBe(1);
    // the gateway's records name the host that served each
    await waitFor(async () => ((await requestLog(gw)) as Row[]).some((r) => r.model === 'phi3:latest'), 10_000, 'the records at the gateway');
    const rows = (await requestLog(gw)) as Row[];
    const hostOf = (model: string): string | null | undefined => rows.find((r) => r.model === model && r.status === 200)?.host;
    expect([hostOf('qwen2.5:latest'), hostOf('mistral:latest'), hostOf('phi3:latest')]).toEqual(['h1', 'h2', 'h3']);
  });

  it('doctor --guard: on the router, each GPU host answers it over mTLS (and no Ollama is expected there); on a member, it knows its router', async () => {
    const routerDoc = await lab.exec(lab.ns('gpu'), 'node', [BIN, 'doctor', '--guard', '--config', join(dirs.edge, 'guard.json'), '--json']);
    expect(routerDoc.code, routerDoc.stdout + routerDoc.stderr).toBe(0);
    const checks = JSON.parse(routerDoc.stdout) as { check: string; status: string; detail: string }[];
    expect(checks.filter((c) => c.check.startsWith('pool member')).map((c) => [c.check, c.status])).toEqual([['pool member h1', 'ok'], ['pool member h2', 'ok'], ['pool member h3', 'ok']]);
    expect(checks.some((c) => c.check === 'ollama')).toBe(false);
    const memberDoc = await lab.exec(hostNs('h1'), 'node', [BIN, 'doctor', '--guard', '--config', join(dirs.h1, 'guard.json'), '--json']);
    expect(memberDoc.code, memberDoc.stdout + memberDoc.stderr).toBe(0);
    expect(JSON.parse(memberDoc.stdout)).toEqual(expect.arrayContaining([
      expect.objectContaining({ check: 'pool router', status: 'ok', detail: 'serves edge' }),
      expect.objectContaining({ check: 'ollama', status: 'ok' }),
    ]));
  });

  it('bob’s 20 queued generations do not hold alice’s one back by more than one generation slot', async () => {
    const started = Date.now();
    // phi3 is only on h3, which takes one at a time: bob fills its queue.
    const bobs = Array.from({ length: 20 }, () => generate(bob, c2, 'phi3', {}, 30));
    await waitFor(async () => ((await health()).pool?.queued ?? 0) >= 15, 10_000, 'bob’s requests queued at the router');
    const t0 = Date.now();
    const mine = await generate(alice, c1, 'phi3', {}, 30);
    const aliceMs = Date.now() - t0;
    expect(mine.status, mine.body).toBe(200);
    const results = await Promise.all(bobs);
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    const total = Date.now() - started;
    // FIFO would have made alice wait for all of bob's (about 20 slots); she waits for the one running.
    await waitFor(async () => ((await requestLog(gw)) as Row[]).filter((r) => r.model === 'phi3:latest' && r.peer === 'bob').length >= 20, 10_000, 'bob’s records');
    const rows = (await requestLog(gw)) as Row[];
    const hers = rows.filter((r) => r.model === 'phi3:latest' && r.peer === 'alice').at(-1)!;
    expect(hers.host).toBe('h3');
    expect(hers.queueMs!, `alice waited ${hers.queueMs} ms in the queue, answered in ${aliceMs} ms; bob's 20 took ${total} ms`).toBeLessThanOrEqual(SLOT_MS * 2);
    expect(aliceMs).toBeLessThan(total / 3);
    // h3 never ran more than its parallelism (1)
    const running = new Set<number>();
    let most = 0;
    for (const e of sims.h3.events()) {
      if (e.event === 'request' && e.path === '/api/generate') most = Math.max(most, running.add(e.id).size);
      if (e.event === 'end') running.delete(e.id);
    }
    expect(most).toBe(1);
    const m = (await httpGet(lab, lab.ns('gpu'), 'http://127.0.0.1:9478/metrics')).body;
    expect(metric(m, 'wgo_guard_queue_wait_seconds_count')).toBeGreaterThanOrEqual(21);
  }, 90_000);

  it('a daily budget holds across the pool: spent on two hosts at once, and across a router restart', async () => {
    // What alice spent so far today, once the router's spool has reached the gateway.
    await waitFor(async () => (await health()).spooled === 0, 10_000, 'the router’s spool to empty');
    const used = ((await requestLog(gw)) as Row[]).filter((r) => r.peer === 'alice').reduce((n, r) => n + charged(r), 0);
    const set = await gw.cli('set-policy', 'alice', '--tokens-per-day', String(used + 100));
    expect(set.code, set.stderr).toBe(0);
    await waitFor(async () => (await health()).ok, 5000, 'the router');
    const since = Math.max(0, ...((await requestLog(gw)) as Row[]).map((r) => r.id));
    const servedRows = async (): Promise<Row[]> => {
      await waitFor(async () => (await health()).spooled === 0, 10_000, 'the router’s spool to empty');
      return ((await requestLog(gw)) as Row[]).filter((r) => r.id > since && r.peer === 'alice' && r.status === 200);
    };
    const pair = async (): Promise<number[]> => (await Promise.all([generate(alice, c1, 'llama3.2'), generate(alice, c1, 'llama3.2')])).map((r) => r.status);
    expect(await pair()).toEqual([200, 200]);
    // Restarted mid-way (SIGKILL: nothing flushed on the way out): it rebuilds today's spend from the gateway and its spool.
    await router.stop('SIGKILL');
    router = await startGuard(lab.ns('gpu'), join(dirs.edge, 'guard.json'), 'router');
    await allHealthy();
    const statuses: number[] = [];
    for (let i = 0; i < 4 && !statuses.includes(429); i++) statuses.push(...(await pair()));
    expect(statuses).toContain(429);
    const served = await servedRows();
    // Served on both hosts, and in all at most the budget plus the two that crossed it together; per-host budgets would have allowed 200.
    expect(new Set(served.map((r) => r.host))).toEqual(new Set(['h1', 'h2']));
    const spent = served.reduce((n, r) => n + charged(r), 0);
    expect(spent).toBeGreaterThanOrEqual(100);
    expect(spent).toBeLessThanOrEqual(100 + 2 * 21);
    expect((await generate(alice, c1, 'llama3.2')).status).toBe(429);
  }, 90_000);

  it('a host killed mid-run: its stream ends in an error, new requests go to another host, it leaves the rotation and comes back', async () => {
    // qwen2.5 is only on h1: a long stream there.
    const before = generations('h1');
    const stream = tlsCurl(lab, c2, as(bob), '/api/generate', { data: JSON.stringify({ model: 'qwen2.5', prompt: 'long', stream: true, options: { num_predict: 400 } }), timeoutSec: 30 });
    await waitFor(() => generations('h1') > before, 5000, 'the stream to reach h1');
    await new Promise((r) => setTimeout(r, 300));
    await guards.h1.stop('SIGKILL');
    const cut = await stream;
    expect(cut.status).toBe(200);
    expect(cut.body).not.toContain('"done":true');
    // llama3.2 is on h1 and h2, two slots each. A burst of four at once, before any probe (every 5 s) has seen h1
    // die: two are dealt to h1, whose connection is refused, and go to h2 before their first byte. All are served there.
    const h2Before = generations('h2');
    const burst = await Promise.all(Array.from({ length: 4 }, () => generate(bob, c2, 'llama3.2', {}, 15)));
    expect(burst.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(generations('h2') - h2Before).toBe(4);
    await waitFor(async () => (await hostHealth('h1')) === 'cooldown', 10_000, 'h1 out of the rotation');
    const down = await generate(bob, c2, 'qwen2.5');
    expect(down.status).toBe(503);
    expect(down.headers['retry-after']).toBeDefined();
    const gauge = (await httpGet(lab, lab.ns('gpu'), 'http://127.0.0.1:9478/metrics')).body;
    expect(metric(gauge, 'wgo_guard_pool_host_up', { host: 'h1' })).toBe(0);
    await startMember('h1');
    await waitFor(async () => (await hostHealth('h1')) === 'healthy', 40_000, 'h1 back in the rotation');
    expect((await generate(bob, c2, 'qwen2.5')).status).toBe(200);
  }, 90_000);

  it('drain, then remove, a host while streams run on it: none is cut, new requests go elsewhere', async () => {
    await waitFor(async () => (await health()).pool?.hosts.every((h) => h.inFlight === 0) === true, 10_000, 'the pool idle');
    // Four long streams of llama3.2: two fill h2 (where it is loaded, so preferred), two go to h1.
    const streams = [0, 1, 2, 3].map(() => tlsCurl(lab, c2, as(bob), '/api/generate', { data: JSON.stringify({ model: 'llama3.2', prompt: 'long', stream: true, options: { num_predict: 160 } }), timeoutSec: 30 }));
    await waitFor(async () => (await health()).pool?.hosts.filter((h) => h.inFlight === 2).map((h) => h.name).sort().join() === 'h1,h2', 5000, 'two streams on h1 and two on h2');
    const drained = await gw.cli('drain-guard', 'h2');
    expect(drained.code, drained.stderr).toBe(0);
    await waitFor(async () => (await health()).pool?.hosts.find((h) => h.name === 'h2')?.draining === true, 5000, 'the router to see the drain');
    const refused = await gw.cli('remove-guard', 'h2');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/draining|still runs|has not reported/);
    const h2Before = generations('h2');
    // They wait for a slot on h1 rather than go to the draining host.
    for (let i = 0; i < 3; i++) expect((await generate(bob, c2, 'llama3.2', {}, 15)).status).toBe(200);
    expect(generations('h2')).toBe(h2Before);
    const done = await Promise.all(streams);
    for (const s of done) {
      expect(s.status).toBe(200);
      expect(s.body).toContain('"done":true');
      expect(s.body).toMatch(/"eval_count":160/);
    }
    const list = await gw.cliJson<{ name: string; draining: boolean; host: { inFlight: number; draining: boolean } | null }[]>('list-guards');
    expect(list.find((g) => g.name === 'h2')).toMatchObject({ draining: true });
    await waitFor(async () => (await gw.cli('remove-guard', 'h2')).code === 0, 15_000, 'remove-guard h2 once the router reports it idle');
    await waitFor(async () => !(await health()).pool?.hosts.some((h) => h.name === 'h2'), 5000, 'h2 gone from the router');
    expect((await generate(bob, c2, 'mistral')).status).toBe(404);
    const status = await gw.cliJson<{ pool: { router: string; hosts: { name: string; health: string }[] } }>('status');
    expect(status.pool.router).toBe('edge');
    expect(status.pool.hosts.map((h) => h.name).sort()).toEqual(['h1', 'h3']);
  }, 90_000);
});
