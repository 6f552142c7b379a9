/**
 * Two-box mode with the guard → gateway sync link cut (iptables in the GPU
 * namespace drops its TCP to the sync API; peer traffic is untouched): the
 * guard keeps enforcing the last peer set, also across a restart, and spools
 * its records; when the link returns every record arrives exactly once and a
 * revocation made meanwhile takes effect.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GW_LAN, clientUp, waitFor } from './harness.js';
import { addPeer, createGuardLab, requestLog, tlsCurl, type Creds, type GuardLab, type HttpResult, type Peer } from './guard-harness.js';

/** Both directions: an answer already on its way (a long-poll) must not arrive either. */
const CUT = [
  ['OUTPUT', '-p', 'tcp', '-d', GW_LAN, '--dport', '7443', '-j', 'DROP'],
  ['INPUT', '-p', 'tcp', '-s', GW_LAN, '--sport', '7443', '-j', 'DROP'],
];
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

describe('guard: the sync link cut and restored', () => {
  let gl: GuardLab;
  let alice: Peer;
  let bob: Peer;
  let c1: string;
  let gpu: string;
  /** Requests that reached the guard (each makes one record), and the prompts of those to be served. */
  let made = 0;
  const prompts: string[] = [];
  const as = (p: Peer): Creds => ({ ca: p.ca, crt: p.crt, key: p.key });

  const generate = async (model: string): Promise<HttpResult> => {
    const prompt = `request ${made} ${model}`;
    if (model === 'llama3.2') prompts.push(prompt);
    made++;
    return tlsCurl(gl.lab, c1, as(alice), '/api/generate', { data: JSON.stringify({ model, prompt, stream: false }) });
  };
  /** bob's certificate from alice's tunnel: 403 while the guard knows bob, 401 once it knows he is revoked. */
  const bobFromAlice = async (): Promise<HttpResult> => {
    made++;
    return tlsCurl(gl.lab, c1, as(bob), '/api/version');
  };
  const recordsAtGateway = async (): Promise<number> => (await requestLog(gl.gw)).length;

  beforeAll(async () => {
    gl = await createGuardLab('gs');
    alice = await addPeer(gl.lab, gl.gw, 'alice');
    bob = await addPeer(gl.lab, gl.gw, 'bob');
    await gl.waitPeers(2);
    await gl.change(() => gl.gw.cli('set-policy', 'alice', '--models', 'llama3.2'));
    c1 = gl.lab.ns('c1');
    gpu = gl.lab.ns('gpu');
    await clientUp(gl.lab, c1, 'wgcgs1', alice.config);
    await clientUp(gl.lab, gl.lab.ns('c2'), 'wgcgs2', bob.config);
  });
  afterAll(async () => {
    await gl?.cleanup();
  });

  it('with the link up, records reach the gateway', async () => {
    expect((await generate('llama3.2')).status).toBe(200);
    await waitFor(async () => (await recordsAtGateway()) === made, 5000, 'the first record');
    expect(await gl.health()).toMatchObject({ gateway: 'connected', peers: 2 });
  });

  describe('while the link is cut', () => {
    let atGateway = 0;
    beforeAll(async () => {
      atGateway = await recordsAtGateway();
      for (const rule of CUT) {
        const r = await gl.lab.exec(gpu, 'iptables', ['-I', ...rule]);
        expect(r.code, r.stderr).toBe(0);
      }
      // The cut is real: the GPU host cannot open a connection to the sync API.
      const probe = await gl.lab.exec(gpu, 'curl', ['-s', '-k', '--connect-timeout', '1', `https://${GW_LAN}:7443/`]);
      expect(probe.code).toBe(28);
    });

    it('peers are served and refused by the last peer set; records wait in the spool', async () => {
      for (let i = 0; i < 4; i++) expect((await generate('llama3.2')).status).toBe(200);
      const denied = await generate('qwen2.5:0.5b');
      expect(denied.status).toBe(403);
      expect(denied.json()).toEqual({ error: 'model "qwen2.5:0.5b" is not allowed for this peer' });
      await waitFor(async () => (await gl.health()).spooled >= 5, 5000, 'the records to be spooled');
      await new Promise((r) => setTimeout(r, 1500));
      expect(await recordsAtGateway()).toBe(atGateway);
    });

    it('a revocation made at the gateway meanwhile is not known to the guard yet', async () => {
      const r = await gl.gw.cli('revoke-peer', 'bob');
      expect(r.code, r.stderr).toBe(0);
      await new Promise((res) => setTimeout(res, 1000));
      const still = await bobFromAlice();
      expect(still.status).toBe(403);
      expect(still.json()).toEqual({ error: 'client certificate belongs to 10.66.0.3, not to 10.66.0.2' });
      expect((await gl.health()).peers).toBe(2);
    });

    it('a guard restarted while cut enforces the peer set it saved, and keeps its spool', async () => {
      const spooled = made - atGateway;
      await waitFor(async () => (await gl.health()).spooled === spooled, 5000, 'every record so far in the spool');
      // A restart is downtime for every peer: it must not wait long for the unreachable gateway
      // (at most the sync client's connect timeout, which undici cannot abort).
      const t = Date.now();
      await gl.stopGuard('SIGTERM');
      const stopMs = Date.now() - t;
      console.log(`guard stopped in ${stopMs} ms with the gateway unreachable`);
      expect(stopMs).toBeLessThan(5000);
      await gl.startGuard();
      const h = await gl.health();
      expect(h).toMatchObject({ ok: true, peers: 2 });
      expect(h.spooled).toBe(spooled);
      expect((await generate('llama3.2')).status).toBe(200);
      expect((await generate('qwen2.5:0.5b')).status).toBe(403);
      expect((await bobFromAlice()).status).toBe(403);
      const noCert = await tlsCurl(gl.lab, c1, { ca: alice.ca }, '/api/version');
      made++;
      expect(noCert.status).toBe(401);
      await waitFor(async () => (await gl.health()).spooled >= spooled + 4, 5000, 'the new records to be spooled');
      expect(await recordsAtGateway()).toBe(atGateway);
    });

    afterAll(async () => {
      for (const rule of CUT) await gl.lab.exec(gpu, 'iptables', ['-D', ...rule]);
    });
  });

  describe('when the link returns', () => {
    let restoredAt = 0;
    beforeAll(() => {
      restoredAt = Date.now();
    });

    it('every record arrives exactly once', async () => {
      let rows = await requestLog(gl.gw);
      await waitFor(async () => (rows = await requestLog(gl.gw)).length >= made && (await gl.health()).spooled === 0, 30_000, `${made} records at the gateway`, 200);
      const recoveredMs = Date.now() - restoredAt;
      console.log(`sync: all ${made} records at the gateway ${recoveredMs} ms after the link returned`);
      expect(rows).toHaveLength(made);
      const keys = rows.map((r) => `${r.guard}/${r.guardSeq}`);
      expect(new Set(keys).size).toBe(rows.length);
      expect(rows.every((r) => r.guard === 'gpu1')).toBe(true);
      // Each served generate request exactly once, identified by its prompt.
      const digests = rows.filter((r) => r.endpoint === 'generate' && r.refusal === null).map((r) => r.promptSha256).sort();
      // The canonical text of a generate request with only a prompt (core/prompt-digest.ts).
      expect(digests).toEqual(prompts.map((p) => sha(JSON.stringify([['prompt', p]]))).sort());
      // Served ones are exactly those Ollama saw.
      expect(rows.filter((r) => r.refusal === null)).toHaveLength(gl.sim.count());
      expect(rows.filter((r) => r.refusal === 'auth_wrong_source')).toHaveLength(2);
    });

    it('the revocation made while cut now applies at the guard', async () => {
      await waitFor(async () => (await gl.health()).peers === 1, 15_000, 'the guard to get the new peer set');
      const r = await bobFromAlice();
      expect(r.status).toBe(401);
      expect(r.json()).toEqual({ error: 'client certificate is revoked or belongs to no active peer' });
      expect(await gl.health()).toMatchObject({ gateway: 'connected', peers: 1 });
      const guards = await gl.gw.cliJson<{ name: string; lastSeen: string }[]>('list-guards');
      expect(Date.now() - Date.parse(guards[0]!.lastSeen)).toBeLessThan(30_000);
    });
  });
});
