/**
 * Issue 10, items 1 and 2: the daily token budget survives restarts, through
 * the real tunnel, with the real guard and gateway processes killed
 * (SIGKILL) and started again — the guard alone (while its link to the
 * gateway is cut, so it has only its spool), both processes, and `serve` in
 * single-box mode. A peer is never served more than its budget plus the one
 * request that crossed it. Streams that would cross the budget are cut near
 * budget + maxTokensPerRequest, and every charged token, estimates included,
 * is in the gateway's records.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GW_LAN, clientUp, createGateway, createLab, waitFor, type Gateway, type Lab } from './harness.js';
import {
  addPeer, createGuardLab, processes, requestLog, startSim, tlsCurl,
  type Creds, type GuardLab, type HttpResult, type Peer, type Processes, type RequestRow,
} from './guard-harness.js';

/** The sync link cut in the GPU namespace, both directions (as guard-sync.test.ts does). */
const CUT = [
  ['OUTPUT', '-p', 'tcp', '-d', GW_LAN, '--dport', '7443', '-j', 'DROP'],
  ['INPUT', '-p', 'tcp', '-s', GW_LAN, '--sport', '7443', '-j', 'DROP'],
];
/** Tokens of one request here: the prompt (one token) and the simulator's 20. */
const ONE_REQUEST = 21;
const as = (p: Peer): Creds => ({ ca: p.ca, crt: p.crt, key: p.key });
const tokensOf = (r: HttpResult): number => {
  const j = r.json() as { prompt_eval_count?: number; eval_count?: number };
  return (j.prompt_eval_count ?? 0) + (j.eval_count ?? 0);
};
type Row = RequestRow & { estimatedTokens?: number | null };
const charged = (r: Row): number => r.estimatedTokens ?? (r.promptTokens ?? 0) + (r.evalTokens ?? 0);

describe('budget across restarts (two-box)', () => {
  let gl: GuardLab;
  let alice: Peer;
  let bob: Peer;
  let c1: string;
  let c2: string;
  let gpu: string;
  /** Tokens served to each peer, summed from Ollama's answers. */
  const spent: Record<string, number> = { alice: 0, bob: 0 };

  const generate = (p: Peer, ns: string): Promise<HttpResult> =>
    tlsCurl(gl.lab, ns, as(p), '/api/generate', { data: JSON.stringify({ model: 'llama3.2', prompt: 'x', stream: false }) });
  const serve = async (p: Peer, ns: string): Promise<void> => {
    const r = await generate(p, ns);
    expect(r.status, r.body).toBe(200);
    spent[p.name] += tokensOf(r);
  };
  /** Requests until the first 429 (at most `max`): served ones add to spent. */
  const spendUntilRefused = async (p: Peer, ns: string, max = 8): Promise<HttpResult> => {
    for (let i = 0; i < max; i++) {
      const r = await generate(p, ns);
      if (r.status === 429) return r;
      expect(r.status, r.body).toBe(200);
      spent[p.name] += tokensOf(r);
    }
    throw new Error(`${p.name} was never refused: served ${spent[p.name]} tokens`);
  };
  const link = async (op: '-I' | '-D'): Promise<void> => {
    for (const rule of CUT) {
      const r = await gl.lab.exec(gpu, 'iptables', [op, ...rule]);
      expect(r.code, r.stderr).toBe(0);
    }
  };
  /** Charged records reach the spool within 50 ms (recorder.ts), then the gateway. */
  const synced = async (): Promise<void> => {
    await new Promise((r) => setTimeout(r, 150));
    await waitFor(async () => (await gl.health()).spooled === 0, 10_000, 'the spool to empty');
  };

  beforeAll(async () => {
    gl = await createGuardLab('bd', { simArgs: ['--token-rate', '200', '--tokens', '20'] });
    alice = await addPeer(gl.lab, gl.gw, 'alice');
    bob = await addPeer(gl.lab, gl.gw, 'bob');
    await gl.waitPeers(2);
    c1 = gl.lab.ns('c1');
    c2 = gl.lab.ns('c2');
    gpu = gl.lab.ns('gpu');
    await clientUp(gl.lab, c1, 'wgcbd1', alice.config);
    await clientUp(gl.lab, c2, 'wgcbd2', bob.config);
    await gl.change(() => gl.gw.cli('set-policy', 'alice', '--tokens-per-day', '100'));
    await gl.change(() => gl.gw.cli('set-policy', 'bob', '--tokens-per-day', '100'));
  });
  afterAll(async () => {
    await gl?.cleanup();
  });

  it('the guard SIGKILLed while its link to the gateway is cut, and restarted: spending in its spool still counts; 429 token_budget on time', async () => {
    await serve(alice, c1);
    await serve(alice, c1);
    await synced();
    await link('-I');
    try {
      await serve(alice, c1);
      await serve(alice, c1);
      expect(spent.alice).toBe(4 * ONE_REQUEST);
      // Records that charged tokens reach the spool within 50 ms (recorder.ts): the crash comes after.
      await waitFor(async () => (await gl.health()).spooled === 2, 2000, 'the two records in the spool', 10);
      await gl.stopGuard('SIGKILL');
      await gl.startGuard();
      expect((await gl.health()).gateway).toBe('unreachable');
      const refused = await spendUntilRefused(alice, c1);
      expect(refused.json()).toEqual({ error: 'daily token budget of 100 used up' });
      // 84 were spent: one more request was allowed (84 < 100), then none.
      expect(spent.alice).toBe(5 * ONE_REQUEST);
    } finally {
      await link('-D');
    }
    await synced();
    // Restarted again with the gateway reachable: refused at once.
    await gl.stopGuard('SIGKILL');
    await gl.startGuard();
    expect((await generate(alice, c1)).status).toBe(429);
    // Every token served is in the gateway's records (counted by Ollama here: nothing was cut). The refusal
    // records charge nothing: they wait up to the recorder's second, and one may have died with the guard.
    let rows: Row[] = [];
    await waitFor(async () => (rows = (await requestLog(gl.gw)) as Row[]).some((r) => r.peer === 'alice' && r.refusal === 'token_budget'), 10_000, 'the refusal record');
    expect(rows.filter((r) => r.peer === 'alice').reduce((n, r) => n + charged(r), 0)).toBe(spent.alice);
    expect(rows.find((r) => r.peer === 'alice' && r.refusal === 'token_budget')).toMatchObject({ status: 429 });
  });

  it('the gateway and the guard both SIGKILLed and restarted: the figures come from the database; 429 on time', async () => {
    for (let i = 0; i < 4; i++) await serve(bob, c2);
    await synced();
    const daemon = gl.gw.daemon()!;
    daemon.kill('SIGKILL');
    await daemon.then(() => undefined, () => undefined);
    await gl.stopGuard('SIGKILL');
    await gl.gw.start();
    await gl.startGuard();
    await waitFor(async () => (await gl.health()).gateway === 'connected', 10_000, 'the guard to reach the gateway');
    await spendUntilRefused(bob, c2);
    expect(spent.bob).toBe(5 * ONE_REQUEST);
    // And the gateway alone restarting changes nothing for the running guard.
    const d2 = gl.gw.daemon()!;
    d2.kill('SIGKILL');
    await d2.then(() => undefined, () => undefined);
    await gl.gw.start();
    expect((await generate(bob, c2)).status).toBe(429);
    expect((await generate(alice, c1)).status).toBe(429);
  });

  it('streams that would cross the budget are cut near tokensPerDay + maxTokensPerRequest; the estimates are in the records at the gateway', async () => {
    await synced();
    const before = ((await requestLog(gl.gw)) as Row[]).filter((r) => r.peer === 'bob').reduce((n, r) => n + charged(r), 0);
    expect(before).toBe(spent.bob);
    // 50 more for the day, and a request may go 30 past it.
    const budget = before + 50;
    await gl.change(() => gl.gw.cli('set-policy', 'bob', '--tokens-per-day', String(budget), '--max-tokens-per-request', '30'));
    const body = JSON.stringify({ model: 'llama3.2', prompt: 'x', options: { num_predict: 1000 } });
    const t0 = Date.now();
    const streams = await Promise.all([0, 1, 2].map(() => tlsCurl(gl.lab, c2, as(bob), '/api/generate', { data: body, timeoutSec: 10 })));
    expect(Date.now() - t0).toBeLessThan(8000);
    for (const s of streams) expect(s.status).toBe(200);
    // At least one was cut short (curl: the chunked body ended early), none ran to its end.
    expect(streams.some((s) => s.code !== 0)).toBe(true);
    await synced();
    const rows = ((await requestLog(gl.gw)) as Row[]).filter((r) => r.peer === 'bob');
    const cut = rows.filter((r) => r.refusal === 'token_budget' && r.status === 200);
    expect(cut.length).toBeGreaterThanOrEqual(1);
    for (const r of cut) expect(r.estimatedTokens).toBeGreaterThan(0);
    const total = rows.reduce((n, r) => n + charged(r), 0);
    // Cut at the chunk that passed budget + 30: three streams may each add a chunk (a token) meanwhile.
    expect(total).toBeGreaterThan(budget);
    expect(total).toBeLessThanOrEqual(budget + 30 + 6);
    // And the next request is refused at the door.
    expect((await generate(bob, c2)).status).toBe(429);
  });
});

describe('budget across a restart (single-box: serve runs the guard)', () => {
  let lab: Lab;
  let gw: Gateway;
  let procs: Processes;
  let alice: Peer;
  let c1: string;
  let spent = 0;
  const URL = `https://${GW_LAN}:11434`;

  const generate = (): Promise<HttpResult> =>
    tlsCurl(lab, c1, as(alice), '/api/generate', { base: URL, data: JSON.stringify({ model: 'llama3.2', prompt: 'x', stream: false }) });

  beforeAll(async () => {
    lab = await createLab('bd', { gpuListener: false });
    procs = processes(lab);
    gw = await createGateway(lab, 'wgobd', ['--ollama-host', GW_LAN]);
    const config = JSON.parse(readFileSync(gw.configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(gw.configFile, JSON.stringify({ ...config, guard: { listen: `${GW_LAN}:11434`, upstream: 'http://127.0.0.1:11434' } }, null, 2));
    await startSim(lab, procs, lab.ns('gw'), ['--token-rate', '200', '--tokens', '20']);
    await gw.start();
    alice = await addPeer(lab, gw, 'alice');
    c1 = lab.ns('c1');
    await clientUp(lab, c1, 'wgcbd1', alice.config);
    const r = await gw.cli('set-policy', 'alice', '--tokens-per-day', '100');
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(async () => {
    await procs?.stopAll();
    await lab?.cleanup();
  });

  it('serve SIGKILLed right after the peer spent most of its budget, and restarted: one more request, then 429', async () => {
    await waitFor(async () => (await generate()).status === 200, 10_000, 'the policy and the tunnel');
    spent = ONE_REQUEST;
    for (let i = 0; i < 3; i++) {
      const r = await generate();
      expect(r.status).toBe(200);
      spent += tokensOf(r);
    }
    // Records that charged tokens are in the database within 50 ms (recorder.ts): the crash comes after.
    await waitFor(async () => (await requestLog(gw)).filter((r) => r.peer === 'alice').length === 4, 2000, 'the four records', 10);
    const daemon = gw.daemon()!;
    daemon.kill('SIGKILL');
    await daemon.then(() => undefined, () => undefined);
    await gw.start();
    let refused = false;
    for (let i = 0; i < 8 && !refused; i++) {
      const r = await generate();
      if (r.status === 429) refused = true;
      else {
        expect(r.status, r.body).toBe(200);
        spent += tokensOf(r);
      }
    }
    expect(refused).toBe(true);
    expect(spent).toBe(5 * ONE_REQUEST);
    const rows = (await requestLog(gw)) as Row[];
    expect(rows.filter((r) => r.peer === 'alice').reduce((n, r) => n + charged(r), 0)).toBe(spent);
  });
});
