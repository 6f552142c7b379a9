/**
 * A flush of the host's firewall does not open the tunnel: while a hostile
 * peer probes the LAN, the gateway itself and a non-service port on the GPU
 * host through the real wireguard-go tunnel, something wipes netfilter
 * (`iptables -F`, an `iptables-restore` of a bare filter table as a firewall
 * reload does, `nft flush ruleset`). No probe gets through at any moment, the
 * service keeps working, and one periodic reconcile puts every rule back.
 *
 * The firewall reload is played by `iptables-restore` of a bare table with open
 * policies (the worst case: what a reload of saved rules without ours leaves),
 * not by real ufw: ufw keeps its state in the host's /etc/ufw, shared by every
 * namespace, so enabling it in the lab would change the host's own config.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPU, GW_INET, GW_LAN, OTHER, ROOT, clientUp, createGateway, createLab, get, waitFor, type Gateway, type Lab } from './harness.js';

interface Added { address: string; config: string }
interface Attempt { start: number; t: number; target: string; ok: boolean }

const IFACE = 'wgofw';
const SERVICE = `${GPU}:11434`;
/** What the tunnel must never reach: another LAN host, another port of the GPU host, the gateway itself. */
const FORBIDDEN = [`${OTHER}:8080`, `${GPU}:22`, '10.66.0.1:8080', `${GW_LAN}:22`];
/** The gateway's periodic reconcile (config reconcileIntervalSec, the default). */
const INTERVAL_MS = 3000;
/** One reconcile: the interval plus time for the run itself on a busy machine. */
const ONE_RECONCILE_MS = INTERVAL_MS + 2500;

/** A bare filter table with open policies: what `iptables-restore < rules` of a firewall reload leaves. */
const BARE_TABLE = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n';

const FLUSHES: [string, string, string[], string?][] = [
  ['iptables -F', 'iptables', ['-F']],
  ['ip6tables -F', 'ip6tables', ['-F']],
  ['iptables-restore of a bare filter table (a firewall reload)', 'iptables-restore', [], BARE_TABLE],
  ['nft flush ruleset', 'nft', ['flush', 'ruleset']],
];

describe('firewall flush', () => {
  let lab: Lab;
  let gw: Gateway;
  let probes = 0;

  const gwExec = (cmd: string, args: string[], input?: string) => lab.exec(lab.ns('gw'), cmd, args, input === undefined ? {} : { input });
  /** Everything of ours the kernel holds: both filter tables, the peer set, the tc ingress filters. */
  const state = async (iface = IFACE): Promise<string[]> => {
    const [v4, v6, set, tc] = await Promise.all([
      gwExec('iptables-save', ['-t', 'filter']), gwExec('ip6tables-save', ['-t', 'filter']),
      gwExec('ipset', ['save', `wgo-peers-${iface}`]), gwExec('tc', ['filter', 'show', 'dev', iface, 'ingress']),
    ]);
    // Two gateways in one namespace (the single-box case) each put their hook first; which of
    // the two ends up first after a flush depends on which repaired first: hooks compare as a set.
    const ours = (t: string): string[] => {
      const lines = t.split('\n').filter((l) => l.includes('WGO-') || l.includes('wg-ollama'));
      const hook = (l: string): boolean => /^-A (FORWARD|INPUT) /.test(l);
      return [...lines.filter((l) => !hook(l)), ...lines.filter(hook).sort()];
    };
    return [...ours(v4.stdout).map((l) => `v4 ${l}`), ...ours(v6.stdout).map((l) => `v6 ${l}`),
      ...set.stdout.split('\n').filter((l) => l.startsWith('add ')).map((l) => l.replace(/ timeout \d+/, '')),
      ...tc.stdout.split('\n').filter(Boolean).map((l) => `tc ${l}`)];
  };

  /** Starts the prober in the client namespace; `stop()` ends it and returns every attempt. */
  const startProbe = (targets: string[], maxMs: number, from: 'c1' | 'c2' = 'c1') => {
    const out = join(lab.dir, `probe-${probes++}.jsonl`);
    writeFileSync(out, '');
    const p: ResultPromise = execa('ip', ['netns', 'exec', lab.ns(from), 'node', join(ROOT, 'test/lab/clients/probe.mjs'),
      '--max-ms', String(maxMs), '--every-ms', '50', '--timeout-ms', '300', '--workers', '3', ...targets], {
      reject: false, stdin: 'ignore', stdout: { file: out }, stderr: 'ignore',
    });
    const read = (): Attempt[] => readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Attempt);
    return {
      read,
      async stop(): Promise<Attempt[]> {
        p.kill('SIGTERM');
        await p;
        return read();
      },
    };
  };

  const reachable = async (target: string, from: 'c1' | 'c2' = 'c1'): Promise<boolean> => (await get(lab, lab.ns(from), `http://${target}/`, 2)).ok;

  beforeAll(async () => {
    lab = await createLab('fw');
    gw = await createGateway(lab, IFACE);
    await gw.start();
    const p = await gw.cliJson<Added>('add-peer', 'mallory');
    await clientUp(lab, lab.ns('c1'), 'wgcfw1', p.config);
    const serverKey = /\[Peer\]\nPublicKey = (\S+)/.exec(p.config)![1]!;
    // A hostile client: everything into the tunnel.
    await lab.exec(lab.ns('c1'), 'wg', ['set', 'wgcfw1', 'peer', serverKey, 'allowed-ips', '0.0.0.0/0']);
    for (const dst of [`${OTHER}/32`, `${GW_LAN}/32`, '10.66.0.0/24']) await lab.exec(lab.ns('c1'), 'ip', ['route', 'replace', dst, 'dev', 'wgcfw1']);
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  it('before: the service answers, nothing else does', async () => {
    expect(await reachable(SERVICE)).toBe(true);
    expect(await Promise.all(FORBIDDEN.map((t) => reachable(t)))).toEqual(FORBIDDEN.map(() => false));
  });

  it('the second barrier is in place: a tc ingress filter on the tunnel interface', async () => {
    expect((await state()).filter((l) => l.startsWith('tc '))).not.toEqual([]);
  });

  it('the forbidden listeners answer when every barrier is gone (so the checks can fail)', async () => {
    gw.daemon()!.kill('SIGKILL');
    await gw.daemon();
    await gwExec('nft', ['flush', 'ruleset']);
    await gwExec('tc', ['qdisc', 'del', 'dev', IFACE, 'clsact']);
    expect(await Promise.all(FORBIDDEN.map((t) => reachable(t)))).toEqual(FORBIDDEN.map(() => true));
    await gw.start();
    await waitFor(async () => !(await reachable(`${OTHER}:8080`)), ONE_RECONCILE_MS, 'the restart to close the tunnel again', 100);
    expect(await reachable(SERVICE)).toBe(true);
  });

  it.each(FLUSHES)('%s: no probe gets through, the service stays, one reconcile repairs everything', async (_what, cmd, args, input) => {
    const before = await state();
    const probe = startProbe([...FORBIDDEN, SERVICE], 30_000);
    await waitFor(() => probe.read().length >= 10, 5000, 'the probe to run');
    const t0 = Date.now();
    const r = await gwExec(cmd, args, input);
    expect(r.code, r.stderr).toBe(0);
    const flushed = await state();
    expect(flushed).not.toEqual(before);
    const took = await waitFor(async () => JSON.stringify(await state()) === JSON.stringify(before), 15_000, 'the reconciler to repair', 50);
    // Keep probing a little after the repair too.
    await new Promise((res) => setTimeout(res, 500));
    const attempts = await probe.stop();
    const through = attempts.filter((a) => a.ok && a.target !== SERVICE);
    expect(through, `got through after ${_what}`).toEqual([]);
    // Every forbidden target was tried while the rules were gone (several times a second).
    const during = attempts.filter((a) => a.start >= t0 && a.start <= t0 + took);
    for (const target of FORBIDDEN) expect(during.filter((a) => a.target === target).length, target).toBeGreaterThanOrEqual(Math.floor(took / 200));
    expect(attempts.filter((a) => a.start >= t0 && a.target === SERVICE && a.ok).length).toBeGreaterThan(0);
    expect(took).toBeLessThan(ONE_RECONCILE_MS);
    expect(await reachable(SERVICE)).toBe(true);
    console.log(`${_what}: repaired in ${took} ms; ${during.length} probes while open, none through`);
  });

  it.each([
    ['the clsact qdisc deleted', ['qdisc', 'del', 'dev', IFACE, 'clsact']],
    ['a pass-all filter put before ours', ['filter', 'add', 'dev', IFACE, 'ingress', 'pref', '1', 'handle', '2', 'protocol', 'all', 'bpf', 'bytecode', '1,6 0 0 0', 'da']],
    ['a filter at another priority', ['filter', 'add', 'dev', IFACE, 'ingress', 'pref', '7', 'protocol', 'all', 'bpf', 'bytecode', '1,6 0 0 0', 'da']],
  ])('tc drift is repaired within one reconcile, iptables holding meanwhile: %s', async (_what, args) => {
    const before = await state();
    const probe = startProbe([...FORBIDDEN, SERVICE], 30_000);
    await waitFor(() => probe.read().length >= 10, 5000, 'the probe to run');
    expect((await gwExec('tc', args)).code).toBe(0);
    expect(await state()).not.toEqual(before);
    const took = await waitFor(async () => JSON.stringify(await state()) === JSON.stringify(before), 15_000, 'the reconciler to repair', 50);
    const attempts = await probe.stop();
    expect(attempts.filter((a) => a.ok && a.target !== SERVICE)).toEqual([]);
    expect(took).toBeLessThan(ONE_RECONCILE_MS);
    expect(await reachable(SERVICE)).toBe(true);
    console.log(`tc drift (${_what}): repaired in ${took} ms`);
  });

  it('single-box mode (the service on the gateway itself): INPUT holds through the flushes too', async () => {
    // A second gateway in the same namespace whose service is the gateway's LAN address, answered by a plain listener.
    // Its subnet lies in 10.66.0.0/16, which the LAN hosts route back via the gateway (so a probe that got through would be answered).
    const box = await createGateway(lab, 'wgofx', ['--ollama-host', GW_LAN, '--subnet', '10.66.1.0/24', '--listen-port', '51822', '--endpoint', `${GW_INET}:51822`]);
    const conf = JSON.parse(readFileSync(box.configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(box.configFile, JSON.stringify({ ...conf, metricsListen: '127.0.0.1:9479', admin: { listen: ['127.0.0.1:8444'] } }));
    lab.spawn(lab.ns('gw'), 'node', [join(ROOT, 'scripts/lab/listener.mjs'), 'gw-service', '11434']);
    await box.start();
    try {
      const p = await box.cliJson<Added>('add-peer', 'eve');
      await clientUp(lab, lab.ns('c2'), 'wgcfw2', p.config);
      const key = /\[Peer\]\nPublicKey = (\S+)/.exec(p.config)![1]!;
      await lab.exec(lab.ns('c2'), 'wg', ['set', 'wgcfw2', 'peer', key, 'allowed-ips', '0.0.0.0/0']);
      for (const dst of [`${OTHER}/32`, `${GPU}/32`, '10.66.1.0/24']) await lab.exec(lab.ns('c2'), 'ip', ['route', 'replace', dst, 'dev', 'wgcfw2']);
      const service = `${GW_LAN}:11434`;
      const forbidden = [`${GW_LAN}:22`, `${GW_LAN}:8080`, '10.66.1.1:8080', `${GPU}:11434`, `${OTHER}:8080`];
      await waitFor(async () => reachable(service, 'c2'), 10_000, 'the single-box service through the tunnel');
      expect(await Promise.all(forbidden.map((t) => reachable(t, 'c2')))).toEqual(forbidden.map(() => false));
      // So that the checks can fail: with both barriers gone, every forbidden target answers.
      box.daemon()!.kill('SIGKILL');
      await box.daemon();
      await gwExec('tc', ['qdisc', 'del', 'dev', 'wgofx', 'clsact']);
      await gwExec('nft', ['flush', 'ruleset']);
      expect(await Promise.all(forbidden.map((t) => reachable(t, 'c2')))).toEqual(forbidden.map(() => true));
      await box.start();
      await waitFor(async () => !(await reachable(`${GW_LAN}:22`, 'c2')), 10_000, 'the restart to close it again');
      await waitFor(async () => reachable(SERVICE), ONE_RECONCILE_MS, 'the first gateway to be repaired');
      for (const [cmd, args] of [['iptables', ['-F']], ['nft', ['flush', 'ruleset']]] as const) {
        const before = await state('wgofx');
        const probe = startProbe([...forbidden, service], 30_000, 'c2');
        await waitFor(() => probe.read().length >= 10, 5000, 'the probe to run');
        const t0 = Date.now();
        expect((await gwExec(cmd, [...args])).code).toBe(0);
        const took = await waitFor(async () => JSON.stringify(await state('wgofx')) === JSON.stringify(before), 15_000, 'the repair', 50);
        await new Promise((res) => setTimeout(res, 300));
        const attempts = await probe.stop();
        expect(attempts.filter((a) => a.ok && a.target !== service), `${cmd} ${args.join(' ')}`).toEqual([]);
        expect(attempts.filter((a) => a.start >= t0 && a.target === service && a.ok).length).toBeGreaterThan(0);
        expect(took).toBeLessThan(ONE_RECONCILE_MS);
        console.log(`single-box, ${cmd} ${args.join(' ')}: repaired in ${took} ms`);
      }
      // The other gateway's rules came back too.
      await waitFor(async () => reachable(SERVICE), ONE_RECONCILE_MS, 'the first gateway to be repaired');
    } finally {
      box.daemon()!.kill('SIGTERM');
      await box.daemon();
      await box.cli('down');
    }
  });

  it('with the daemon dead, a flush still leaves the tunnel closed; a restart repairs', async () => {
    const before = await state();
    gw.daemon()!.kill('SIGKILL');
    await gw.daemon();
    expect((await gwExec('nft', ['flush', 'ruleset'])).code).toBe(0);
    const probe = startProbe([...FORBIDDEN, SERVICE], 10_000);
    await new Promise((res) => setTimeout(res, 2000));
    const attempts = await probe.stop();
    expect(attempts.filter((a) => a.ok && a.target !== SERVICE)).toEqual([]);
    for (const target of FORBIDDEN) expect(attempts.filter((a) => a.target === target).length, target).toBeGreaterThan(10);
    expect(attempts.some((a) => a.target === SERVICE && a.ok)).toBe(true);
    await gw.start();
    expect(await state()).toEqual(before);
  });

  it('fails closed when the barrier cannot be installed: interface down, doctor, status, metric and healthz say so', async () => {
    gw.daemon()!.kill('SIGTERM');
    await gw.daemon();
    // A kernel without cls_bpf: tc reads fine, every change is refused as the kernel would refuse it.
    const bin = join(lab.dir, 'no-cls-bpf');
    mkdirSync(bin, { recursive: true });
    const tcPath = (await execa('sh', ['-c', 'command -v tc'])).stdout.trim();
    writeFileSync(join(bin, 'tc'), `#!/bin/sh\ncase " $* " in *" show "*) exec ${tcPath} "$@";; esac\necho "Error: TC classifier not found." >&2\nexit 2\n`);
    chmodSync(join(bin, 'tc'), 0o755);
    expect((await gwExec('tc', ['qdisc', 'del', 'dev', IFACE, 'clsact'])).code).toBe(0);
    const daemon = lab.spawn(lab.ns('gw'), 'env', [`PATH=${bin}:${process.env.PATH}`, 'node', join(ROOT, 'bin/wg-ollama.js'), '--config', gw.configFile, 'serve']);
    try {
      await waitFor(async () => !/state UP|,UP/.test((await gwExec('ip', ['link', 'show', IFACE])).stdout), ONE_RECONCILE_MS, 'the interface to go down');
      expect(await reachable(SERVICE)).toBe(false);
      expect(await Promise.all(FORBIDDEN.map((t) => reachable(t)))).toEqual(FORBIDDEN.map(() => false));
      await waitFor(async () => (await gw.cli('status', '--json')).code === 0, 15_000, 'serve to answer');
      const st = await gw.cliJson<{ daemon: { lastReconcile: { ok: boolean; barrier: string; errors: string[] } }; firewall: { barrierInSync: boolean } }>('status');
      expect(st.firewall.barrierInSync).toBe(false);
      expect(st.daemon.lastReconcile).toMatchObject({ ok: false, barrier: 'failed' });
      expect(st.daemon.lastReconcile.errors.join('\n')).toMatch(/tunnel barrier: tc .* TC classifier not found/);
      const doc = await gw.cli('doctor', '--json');
      expect(doc.code).toBe(1);
      expect(JSON.parse(doc.stdout)).toEqual(expect.arrayContaining([
        expect.objectContaining({ check: 'tunnel barrier', status: 'fail' }),
        expect.objectContaining({ check: 'interface', status: 'fail' }),
      ]));
      const metrics = await lab.exec(lab.ns('gw'), 'curl', ['-s', 'http://127.0.0.1:9477/metrics']);
      expect(metrics.stdout).toContain('wgo_firewall_layer_ok{layer="tc"} 0');
      expect(metrics.stdout).toContain('wgo_firewall_layer_ok{layer="iptables"} 1');
      const health = await lab.exec(lab.ns('gw'), 'curl', ['-s', '-w', '\n%{http_code}', 'http://127.0.0.1:9477/healthz']);
      expect(health.stdout.split('\n').at(-1)).toBe('503');
      const log = readFileSync(join(lab.dir, (await execa('ls', [lab.dir])).stdout.split('\n').filter((f) => f.endsWith('-env.log')).at(-1)!), 'utf8');
      expect(log).toMatch(/cannot install the tc ingress barrier/);
    } finally {
      daemon.kill('SIGTERM');
      await daemon;
    }
    await gw.start();
    await waitFor(async () => reachable(SERVICE), ONE_RECONCILE_MS, 'the service to come back');
    const doc = await gw.cli('doctor', '--json');
    expect(JSON.parse(doc.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ check: 'tunnel barrier', status: 'ok' })]));
    expect(doc.code, doc.stdout).toBe(0);
    const metrics = await lab.exec(lab.ns('gw'), 'curl', ['-s', 'http://127.0.0.1:9477/metrics']);
    expect(metrics.stdout).toContain('wgo_firewall_layer_ok{layer="tc"} 1');
  });

  it('`down` removes the barrier with the interface', async () => {
    gw.daemon()!.kill('SIGTERM');
    await gw.daemon();
    expect((await gw.cli('down')).code).toBe(0);
    expect((await gwExec('tc', ['qdisc', 'show', 'dev', IFACE])).code).not.toBe(0);
    expect(await state()).toEqual([]);
  });
});
