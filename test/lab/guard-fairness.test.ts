/**
 * Issue 10, items 3 and 10, through the real tunnel (two-box mode).
 *
 * Fair upstream slots: alice opens endless streams and reads nothing of them;
 * she holds only her share of the guard's small pool (429 with Retry-After
 * beyond it) while bob is served, and her stalled answers are cut after
 * idleTimeoutSec (client_stalled, upstream aborted).
 *
 * A spool that cannot be written: the guard runs in its own mount namespace
 * with its state directory on a 2 MiB tmpfs (nothing of the host is touched;
 * the mount dies with the process), which the test fills: every request is
 * answered 503 audit_unavailable and nothing reaches Ollama, /healthz, the
 * metrics and `doctor --guard` say so, a revocation from the gateway still
 * takes effect; once space is freed the same process serves again and every
 * record — the refusals included — reaches the gateway.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientUp, waitFor } from './harness.js';
import {
  BIN, CLIENTS, addPeer, clientArgs, createGuardLab, httpGet, metric, requestLog, tlsCurl,
  type Bg, type Creds, type GuardHealth, type GuardLab, type Peer,
} from './guard-harness.js';

const POOL = 8;
const IDLE_SEC = 2;

describe('guard: fair upstream slots and a full spool', () => {
  let gl: GuardLab;
  let alice: Peer;
  let bob: Peer;
  let carol: Peer;
  let c1: string;
  let c2: string;
  let gpu: string;
  const as = (p: Peer): Creds => ({ ca: p.ca, crt: p.crt, key: p.key });
  const metrics = async (): Promise<string> => (await httpGet(gl.lab, gpu, 'http://127.0.0.1:9478/metrics')).body;
  const generate = (p: Peer, ns: string) => tlsCurl(gl.lab, ns, as(p), '/api/generate', { data: JSON.stringify({ model: 'llama3.2', prompt: 'hi', stream: false }) });

  beforeAll(async () => {
    // the simulator at full speed: a stream nobody reads fills every buffer on the way within a second
    gl = await createGuardLab('fs', { simArgs: ['--token-rate', '0'], guardLimits: { maxUpstreamRequests: POOL, idleTimeoutSec: IDLE_SEC } });
    alice = await addPeer(gl.lab, gl.gw, 'alice');
    bob = await addPeer(gl.lab, gl.gw, 'bob');
    // carol never connects a tunnel: her certificate is used from bob's address, and she is revoked while the disk is full
    carol = await addPeer(gl.lab, gl.gw, 'carol');
    await gl.waitPeers(3);
    // maxStreams out of alice's way: her share of the pool is what bounds her
    await gl.change(() => gl.gw.cli('set-policy', 'alice', '--streams', '100'));
    c1 = gl.lab.ns('c1');
    c2 = gl.lab.ns('c2');
    gpu = gl.lab.ns('gpu');
    await clientUp(gl.lab, c1, 'wgcfs1', alice.config);
    await clientUp(gl.lab, c2, 'wgcfs2', bob.config);
  }, 120_000);
  afterAll(async () => {
    await gl?.cleanup();
  });

  it("one peer's unread streams hold only its share; another peer is served; the stalled answers are cut after idleTimeoutSec", async () => {
    const readers = gl.procs.spawn(c1, 'node', [join(CLIENTS, 'slow-readers.mjs'), ...clientArgs(as(alice)), '--count', String(POOL), '--hold-sec', '20'], 'slow');
    try {
      await waitFor(() => readers.json().filter((l) => 'status' in l).length === POOL, 15_000, "every one of alice's answers begun");
      const heads = readers.json<{ status: number; retryAfter: string | null }>().filter((l) => 'status' in l);
      // a quarter of the pool, then 429 with Retry-After
      expect(heads.filter((h) => h.status === 200)).toHaveLength(POOL / 4);
      expect(heads.filter((h) => h.status === 429 && h.retryAfter === '1')).toHaveLength(POOL - POOL / 4);
      const streams = () => gl.sim.events().filter((e) => e.event === 'request' && e.path === '/api/generate');
      expect(streams()).toHaveLength(POOL / 4);

      // bob, meanwhile: a small answer, and the 6 MB verbose /api/show (a non-generating request) read whole
      const version = await tlsCurl(gl.lab, c2, as(bob), '/api/version');
      expect(version.status, version.body).toBe(200);
      const show = await tlsCurl(gl.lab, c2, as(bob), '/api/show', { data: JSON.stringify({ model: 'llama3.2', verbose: true }), timeoutSec: 10 });
      expect(show.status).toBe(200);
      expect(show.body.length).toBeGreaterThan(5_000_000);

      // alice's unread answers are cut, upstream too, within idleTimeoutSec of stalling (the client holds on for 20 s)
      const t0 = Date.now();
      await waitFor(() => gl.sim.events().filter((e) => e.event === 'end' && e.aborted).length === POOL / 4, (IDLE_SEC + 6) * 1000, 'the stalled streams aborted upstream');
      expect(Date.now() - t0).toBeLessThan((IDLE_SEC + 6) * 1000);
      expect(readers.exited()).toBe(false);
      const text = await metrics();
      expect(metric(text, 'wgo_guard_refusals_total', { reason: 'client_stalled' })).toBe(POOL / 4);
      expect(metric(text, 'wgo_guard_refusals_total', { reason: 'too_many_in_flight' })).toBe(POOL - POOL / 4);
      expect(metric(text, 'wgo_guard_upstream_in_flight', { peer: 'alice' })).toBe(0);
      await waitFor(async () => (await requestLog(gl.gw)).filter((r) => r.refusal === 'client_stalled').length === POOL / 4, 10_000, 'the records at the gateway');
      const rows = await requestLog(gl.gw);
      expect(rows.filter((r) => r.peer === 'alice' && r.refusal === 'too_many_in_flight' && r.status === 429)).toHaveLength(POOL - POOL / 4);
      expect(rows.find((r) => r.refusal === 'client_stalled')).toMatchObject({ peer: 'alice', endpoint: 'generate', status: 200 });
      // and alice is served again once her slots are free
      expect((await generate(alice, c1)).status).toBe(200);
    } finally {
      await readers.stop('SIGKILL');
    }
  }, 90_000);

  describe('the guard with its spool on a tmpfs that fills up', () => {
    let guard: Bg;
    let pid = 0;
    let stateDir: string;
    /** Runs a command in the guard's own mount namespace (where the tmpfs is), and in its network namespace with `net`. */
    const inGuardNs = (cmd: string[], net = false) => execa('nsenter', ['-t', String(pid), '-m', ...(net ? ['-n'] : []), '--', ...cmd], { reject: false, timeout: 30_000 });
    const health = async (): Promise<GuardHealth & { audit?: { ok: boolean; mode: string; buffered: number } }> => gl.health();
    const audit503 = { count: 0 };

    beforeAll(async () => {
      await gl.stopGuard();
      stateDir = join(gl.lab.dir, 'guard-state');
      mkdirSync(stateDir, { recursive: true });
      const c = JSON.parse(readFileSync(gl.guardConfig, 'utf8')) as Record<string, unknown>;
      writeFileSync(gl.guardConfig, JSON.stringify({ ...c, stateDir, auditFailure: 'refuse' }, null, 2));
      // A mount namespace of its own (private: nothing propagates to the host), a 2 MiB tmpfs on the state directory, then the guard.
      guard = gl.procs.spawn(gpu, 'unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o "$1" wgo-fs-state "$2" && shift 2 && exec "$@"',
        'sh', 'size=2m,mode=0700', stateDir, 'node', BIN, 'guard', '--config', gl.guardConfig], 'guard-tmpfs');
      await waitFor(async () => {
        if (guard.exited()) throw new Error(`the guard exited: ${readFileSync(`${guard.out}.err`, 'utf8')}`);
        return (await health().catch(() => null))?.ok === true;
      }, 15_000, 'the guard on the tmpfs to serve');
      // ip netns exec, unshare and sh all exec: the PID spawned is the guard's own
      expect(readFileSync(`/proc/${guard.pid}/cmdline`, 'utf8')).toContain('guard');
      pid = guard.pid;
      expect((await inGuardNs(['findmnt', '-n', '-o', 'FSTYPE', stateDir])).stdout.trim()).toBe('tmpfs');
      expect((await execa('findmnt', ['-n', stateDir], { reject: false })).stdout).toBe('');
    }, 60_000);

    it('serves while the spool can be written', async () => {
      expect((await generate(alice, c1)).status).toBe(200);
      expect((await health()).audit).toMatchObject({ ok: true, mode: 'refuse' });
      await waitFor(async () => (await health()).audit?.buffered === 0, 5000, 'the record spooled');
    });

    it('full: 503 audit_unavailable, nothing reaches Ollama; /healthz, metrics and doctor --guard say so', async () => {
      const fill = await inGuardNs(['dd', 'if=/dev/zero', `of=${join(stateDir, 'fill')}`, 'bs=64k']);
      expect(fill.stderr).toMatch(/No space left on device/);
      // the first request after the disk filled may still be served: its record is what fails
      await waitFor(async () => {
        const r = await generate(alice, c1);
        if (r.status === 503) audit503.count++;
        return r.status === 503;
      }, 10_000, 'the guard to refuse', 300);
      const before = gl.sim.count();
      for (const path of ['/api/version', '/api/tags']) {
        const r = await tlsCurl(gl.lab, c1, as(alice), path);
        expect(r.status).toBe(503);
        expect(r.headers['retry-after']).toBeDefined();
        expect(r.json().error).toMatch(/audit trail unavailable/);
        audit503.count++;
      }
      const r = await generate(bob, c2);
      expect(r.status).toBe(503);
      audit503.count++;
      expect(gl.sim.count()).toBe(before);

      const h = await health();
      expect(h.ok).toBe(false);
      expect(h.audit).toMatchObject({ ok: false, mode: 'refuse' });
      expect(h.lastError).toMatch(/SQLITE_FULL|disk is full/);
      const text = await metrics();
      expect(metric(text, 'wgo_guard_audit_ok')).toBe(0);
      expect(metric(text, 'wgo_guard_spool_write_failures_total')).toBeGreaterThanOrEqual(1);
      expect(metric(text, 'wgo_guard_refusals_total', { reason: 'audit_unavailable' })).toBe(audit503.count);

      const doctor = await inGuardNs(['node', BIN, 'doctor', '--guard', '--config', gl.guardConfig, '--json'], true);
      expect(doctor.exitCode).toBe(1);
      const checks = JSON.parse(doctor.stdout) as { check: string; status: string; detail: string }[];
      expect(checks.find((c) => c.check === 'guard audit')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/cannot write request records.*503/) });
      expect(checks.find((c) => c.check === 'spool')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/cannot be written/) });
    }, 60_000);

    it('full: a revocation sent by the gateway still takes effect', async () => {
      // carol's certificate, from bob's tunnel address: 403 wrong source while she is a peer, 401 once revoked
      const before = await tlsCurl(gl.lab, c2, as(carol), '/api/version');
      expect(before.status).toBe(403);
      await gl.change(() => gl.gw.cli('revoke-peer', 'carol'));
      const after = await tlsCurl(gl.lab, c2, as(carol), '/api/version');
      expect(after.status).toBe(401);
      expect((await health()).audit?.ok).toBe(false);
      expect(guard.exited()).toBe(false);
    }, 30_000);

    it('space freed: the same process serves again, and every record reaches the gateway', async () => {
      expect((await inGuardNs(['rm', join(stateDir, 'fill')])).exitCode).toBe(0);
      await waitFor(async () => (await health()).audit?.ok === true, 10_000, 'the audit trail back');
      expect((await health()).ok).toBe(true);
      expect(guard.exited()).toBe(false);
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('guard');
      const r = await generate(alice, c1);
      expect(r.status).toBe(200);
      expect(metric(await metrics(), 'wgo_guard_audit_ok')).toBe(1);
      // the refusals were kept in memory and written once the spool could be: the gateway has each of them
      await waitFor(async () => (await requestLog(gl.gw)).filter((x) => x.refusal === 'audit_unavailable').length === audit503.count, 15_000, 'the audit_unavailable records at the gateway');
      // carol's 401, refused while the disk was full, is there too
      expect((await requestLog(gl.gw)).some((x) => x.status === 401)).toBe(true);
    }, 60_000);
  });
});
