/**
 * Full disks, proven (issue 12, item 3). The gateway's state directory is a
 * small tmpfs in a private mount namespace (full-disk-harness.ts), filled on
 * purpose with a filler file; serve (single-box: the guard in-process, its
 * auditFailure "refuse"), the admin UI and every CLI call run in it, with a
 * real tunnel (wireguard-go) from two client namespaces. On the full disk:
 * add-peer, rotate-peer and the web UI fail with a clear error and leave
 * nothing; revoke and disable still take access away at once (kept in the
 * pre-allocated denial journal) and keep it away across a restart of serve;
 * the firewall stays closed, the active peer's tunnel works, the guard answers
 * 503 while it cannot record. When the filler goes, everything recovers
 * without a restart and every request answered 200 is in the database.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'otplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GW_INET, GW_LAN, clientUp, createLab, get, waitFor, type Lab } from './harness.js';
import { BIN, httpGet, metric, processes, startSim, tlsCurl, type Bg, type Creds, type Processes } from './guard-harness.js';
import { createSmallDisk, diskCli, type SmallDisk } from './full-disk-harness.js';

const IFACE = 'wgofd';
const GUARD = `https://${GW_LAN}:11434`;
const ADMIN = `https://${GW_LAN}:8443`;
const PASSWORD = 'full disk admin password';

interface Issued { name: string; address: string; publicKey: string; config: string; certificate: string; certificateKey: string; caCertificate: string }

describe('full disk: clear errors, access still taken away, recovery without a restart', () => {
  let lab: Lab;
  let procs: Processes;
  let disk: SmallDisk;
  let gwns: string;
  let cfg: string;
  let c: ReturnType<typeof diskCli>;
  let serve: Bg & { exit: () => string };
  const serves: (Bg & { exit: () => string })[] = [];
  let alice: Issued & Creds;
  let bob: Issued & Creds;
  let dave: Issued;
  let frank: Issued;
  let jar: string;
  /** Every answer the guard gave alice with status 200: each must end up in the database. */
  let servedToAlice = 0;
  const db = (): string => join(disk.dir, 'wg-ollama.db');

  const startServe = async (): Promise<void> => {
    serve = disk.spawn(gwns, 'node', [BIN, '--config', cfg, 'serve'], 'serve');
    serves.push(serve);
    const s = serve;
    await waitFor(async () => {
      if (s.exited()) throw new Error(`serve exited: ${readFileSync(`${s.out}.err`, 'utf8')}${readFileSync(s.out, 'utf8').slice(-2000)}`);
      const r = await c.cli('status', '--json');
      return r.code === 0 && (JSON.parse(r.stdout) as { daemon: { running: boolean } }).daemon.running;
    }, 20_000, 'serve to answer');
  };
  const issue = async (name: string): Promise<Issued & Creds> => {
    const p = await c.json<Issued>('add-peer', name);
    const dir = join(lab.dir, 'peers');
    const files = { ca: join(dir, `${name}-ca.crt`), crt: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
    writeFileSync(files.ca, p.caCertificate);
    writeFileSync(files.crt, p.certificate);
    writeFileSync(files.key, p.certificateKey, { mode: 0o600 });
    return { ...p, ...files };
  };
  const ask = async (ns: string, who: Creds) => {
    const r = await tlsCurl(lab, ns, who, '/api/generate', { base: GUARD, timeoutSec: 2, data: JSON.stringify({ model: 'llama3.2', prompt: 'disk', stream: false }) });
    if (who === alice && r.status === 200) servedToAlice++;
    return r;
  };
  const wgPeers = async (): Promise<string[]> => (await lab.exec(gwns, 'wg', ['show', IFACE, 'peers'])).stdout.split('\n').filter(Boolean);
  /** Every file under the state directory with its size (the filler and the WAL/shm left out: they change by design). */
  const listing = async (): Promise<string[]> => {
    const r = await disk.exec(gwns, 'find', [disk.dir, '-printf', '%P %s\n']);
    return r.stdout.split('\n').filter((l) => l && !/^(filler|wg-ollama\.db-(wal|shm)|control\.sock) /.test(l)).sort();
  };
  const counts = async () => (await c.sql<{ peers: number; certs: number; audit: number }>(db(),
    'SELECT (SELECT count(*) FROM peers) AS peers, (SELECT count(*) FROM certificates) AS certs, (SELECT count(*) FROM audit_log) AS audit'))[0]!;
  const peerRow = async (name: string) => (await c.sql<{ status: string; public_key: string }>(db(), `SELECT status, public_key FROM peers WHERE name = '${name}' ORDER BY id DESC LIMIT 1`))[0]!;
  const web = (args: string[]) => lab.exec(lab.ns('other'), 'curl', ['-s', '-g', '--cacert', alice.ca, '-b', jar, '-c', jar, '-m', '10', ...args]);
  const csrfOf = (html: string): string => /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';

  beforeAll(async () => {
    lab = await createLab('fd', { gpuListener: false });
    procs = processes(lab);
    gwns = lab.ns('gw');
    disk = await createSmallDisk(lab, 'state', 8);
    cfg = join(lab.dir, 'wgofd.json');
    c = diskCli(disk, gwns, cfg);
    const init = await c.cli('init', '--endpoint', `${GW_INET}:51820`, '--ollama-host', GW_LAN, '--interface', IFACE, '--state-dir', disk.dir);
    if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
    const config = JSON.parse(readFileSync(cfg, 'utf8')) as Record<string, unknown>;
    writeFileSync(cfg, JSON.stringify({ ...config, monitorIntervalSec: 1,
      guard: { listen: `${GW_LAN}:11434`, upstream: 'http://127.0.0.1:11434', auditFailure: 'refuse' },
      admin: { listen: [`${GW_LAN}:8443`] } }, null, 2));
    await startSim(lab, procs, gwns);
    await startServe();
    const added = await c.cli('admin', 'add', 'root1', '--password-stdin', '--json');
    expect(added.code).toBe(2);
    const admin = await disk.exec(gwns, 'node', [BIN, '--config', cfg, 'admin', 'add', 'root1', '--password-stdin', '--json'], { input: `${PASSWORD}\n` });
    if (admin.code !== 0) throw new Error(`admin add failed: ${admin.stderr}`);
    const secret = new URL((JSON.parse(admin.stdout) as { totpUri: string }).totpUri).searchParams.get('secret')!;
    mkdirSync(join(lab.dir, 'peers'));
    alice = await issue('alice');
    bob = await issue('bob');
    dave = await issue('dave');
    frank = await issue('frank');
    await clientUp(lab, lab.ns('c1'), 'wgcfd1', alice.config);
    await clientUp(lab, lab.ns('c2'), 'wgcfd2', bob.config);
    jar = join(lab.dir, 'cookies.txt');
    const form = await web([`${ADMIN}/login`]);
    const login = await web(['-o', '/dev/null', '-w', '%{http_code}', '-H', `Origin: ${ADMIN}`, '--data-urlencode', `_csrf=${csrfOf(form.stdout)}`,
      '--data-urlencode', 'name=root1', '--data-urlencode', `password=${PASSWORD}`, '--data-urlencode', `code=${await generate({ secret })}`, `${ADMIN}/login`]);
    if (login.stdout !== '303') throw new Error(`admin sign-in failed: ${login.stdout} ${login.stderr}`);
  }, 120_000);
  afterAll(async () => {
    await procs?.stopAll();
    await disk?.cleanup();
    await lab?.cleanup();
  });

  it('before: both peers are served through the tunnel and recorded', async () => {
    expect((await ask(lab.ns('c1'), alice)).status).toBe(200);
    expect((await ask(lab.ns('c2'), bob)).status).toBe(200);
    await waitFor(async () => (await c.sql(db(), "SELECT 1 FROM requests WHERE guard = 'local'")).length === 2, 5000, 'two records');
  });

  it('the tmpfs fills up; the host sees none of it', async () => {
    // Everything in the WAL goes into the database file and the WAL to 0 bytes: from now on every commit
    // must grow a file. (With room left in a WAL, SQLite reuses it and small commits still succeed.)
    await c.truncateWal(db());
    expect(await disk.fill(gwns)).toBe(0);
    expect(readdirSync(disk.dir)).toEqual([]); // the host's own directory under the mount
    expect(serve.exited()).toBe(false);
  });

  it('add-peer fails with a clear error and leaves nothing half-created', async () => {
    const [files, before] = [await listing(), await counts()];
    const r = await c.cli('add-peer', 'carol', '--json');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^wg-ollama: the disk is full .*nothing was changed; free some space and try again$/);
    expect(r.stdout).toBe('');
    expect(await listing()).toEqual(files);
    expect(await counts()).toEqual(before);
  });

  it('rotate-peer fails the same way; the old keys keep working', async () => {
    const [files, before] = [await listing(), await counts()];
    const r = await c.cli('rotate-peer', 'alice', '--json');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the disk is full .*nothing was changed/);
    expect(await listing()).toEqual(files);
    expect(await counts()).toEqual(before);
    expect((await peerRow('alice')).public_key).toBe(alice.publicKey);
    expect(await wgPeers()).toContain(alice.publicKey);
  });

  it('revoke-peer takes access away at once although the database cannot record it, and says so', async () => {
    expect(await wgPeers()).toContain(bob.publicKey);
    const t0 = Date.now();
    const r = await c.cli('revoke-peer', 'bob', '--json');
    console.log(`revoke-peer on the full disk returned in ${Date.now() - t0} ms (access removed, saved: false)`);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'bob', status: 'revoked', changed: true, live: true, saved: false });
    expect(r.stderr).toMatch(/the disk is full: access was removed from the tunnel now, but the revoke could not be saved/);
    expect(await wgPeers()).not.toContain(bob.publicKey);
    const probe = await ask(lab.ns('c2'), bob);
    expect(probe.status).toBe(0);
    // Honest: the database still says active; the denial waits in the pre-allocated journal.
    expect((await peerRow('bob')).status).toBe('active');
    expect((await disk.exec(gwns, 'cat', [join(disk.dir, 'denials')])).stdout).toContain('"name":"bob"');
  });

  it('disable-peer too', async () => {
    expect(await wgPeers()).toContain(dave.publicKey);
    const r = await c.cli('disable-peer', 'dave', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: 'dave', status: 'disabled', live: true, saved: false });
    expect(await wgPeers()).not.toContain(dave.publicKey);
  });

  it('the daemon runs on: firewall closed, the active peer tunnel up, the guard refuses (auditFailure "refuse") with 503', async () => {
    let last = await ask(lab.ns('c1'), alice);
    await waitFor(async () => (last = await ask(lab.ns('c1'), alice)).status === 503, 10_000, 'the guard to refuse unrecorded requests');
    expect(last.json()).toEqual({ error: 'the guard cannot record requests right now (audit trail unavailable); please try again later' });
    const m = await httpGet(lab, gwns, 'http://127.0.0.1:9477/metrics');
    expect(metric(m.body, 'wgo_guard_audit_ok')).toBe(0);
    expect(metric(m.body, 'wgo_guard_spool_write_failures_total')).toBeGreaterThan(0);
    expect(await wgPeers()).toContain(alice.publicKey);
    for (const url of [`http://${GW_LAN}:8080/`, `http://${GW_LAN}:22/`]) expect((await get(lab, lab.ns('c1'), url, 1)).ok).toBe(false);
    expect((await get(lab, gwns, `http://${GW_LAN}:8080/`)).ok).toBe(true); // the listener is alive: the firewall drops
    expect(serve.exited()).toBe(false);
  });

  it('the web UI: creating a peer shows a clear 503 page and leaves nothing; signing in is refused the same way', async () => {
    const [files, before] = [await listing(), await counts()];
    const form = await web([`${ADMIN}/peers/new`]);
    const r = await web(['-w', '\n%{http_code}', '-H', `Origin: ${ADMIN}`, '--data-urlencode', `_csrf=${csrfOf(form.stdout)}`, '--data-urlencode', 'name=erin', `${ADMIN}/peers`]);
    expect(r.stdout.split('\n').pop()).toBe('503');
    expect(r.stdout).toMatch(/the disk is full .*nothing was changed/);
    expect(await listing()).toEqual(files);
    expect(await counts()).toEqual(before);
    const fresh = join(lab.dir, 'fresh-cookies.txt');
    const page = await lab.exec(lab.ns('other'), 'curl', ['-s', '-g', '--cacert', alice.ca, '-c', fresh, `${ADMIN}/login`]);
    const login = await lab.exec(lab.ns('other'), 'curl', ['-s', '-g', '--cacert', alice.ca, '-b', fresh, '-w', '\n%{http_code}', '-H', `Origin: ${ADMIN}`,
      '--data-urlencode', `_csrf=${csrfOf(page.stdout)}`, '--data-urlencode', 'name=root1', '--data-urlencode', `password=${PASSWORD}`, '--data-urlencode', 'code=000000', `${ADMIN}/login`]);
    expect(login.stdout.split('\n').pop()).toBe('503');
    expect(login.stdout).toMatch(/the disk is full/);
  });

  it("the web UI's revoke takes access away too, and says it is not saved yet (202)", async () => {
    expect(await wgPeers()).toContain(frank.publicKey);
    const form = await web([`${ADMIN}/peers/new`]);
    const r = await web(['-w', '\n%{http_code}', '-H', `Origin: ${ADMIN}`, '--data-urlencode', `_csrf=${csrfOf(form.stdout)}`, `${ADMIN}/peers/frank/revoke`]);
    expect(r.stdout.split('\n').pop()).toBe('202');
    expect(r.stdout).toContain('frank: access removed, not saved yet');
    await waitFor(async () => !(await wgPeers()).includes(frank.publicKey), 3000, 'frank out of the peer table');
  });

  it('a restart of serve on the full disk keeps the revoked and disabled peers out', async () => {
    const old = serve;
    await old.stop('SIGTERM');
    expect(old.exit()).toBe('exit 0 signal -'); // a clean teardown, not killed half-way
    await startServe();
    await waitFor(async () => (await wgPeers()).includes(alice.publicKey), 10_000, 'alice back in the peer table');
    expect(await wgPeers()).not.toContain(bob.publicKey);
    expect(await wgPeers()).not.toContain(dave.publicKey);
    expect(await wgPeers()).not.toContain(frank.publicKey);
    expect((await ask(lab.ns('c2'), bob)).status).toBe(0);
  });

  it('space returns: denials saved, writes resume, nothing acknowledged lost — without a restart', async () => {
    const pid = serve.pid;
    await disk.free(gwns);
    const savedMs = await waitFor(async () => (await peerRow('bob')).status === 'revoked' && (await peerRow('dave')).status === 'disabled' && (await peerRow('frank')).status === 'revoked',
      10_000, 'the denials to be saved');
    console.log(`the three kept denials were saved ${savedMs} ms after the filler was deleted`);
    const audit = await c.sql<{ action: string; target: string; actor: string; source: string }>(db(), "SELECT action, target, actor, source FROM audit_log WHERE action IN ('peer.revoke', 'peer.disable')");
    expect(audit.map((a) => [a.action, a.target])).toEqual([['peer.revoke', 'bob'], ['peer.disable', 'dave'], ['peer.revoke', 'frank']]);
    for (const a of audit.slice(0, 2)) expect(a.source).toMatch(/^cli \(saved late: the disk was full at \d{4}-/);
    expect(audit[2]).toMatchObject({ actor: 'root1', source: expect.stringMatching(/^198\.51\.100\.20 \(saved late: the disk was full at \d{4}-/) });
    expect((await disk.exec(gwns, 'cat', [join(disk.dir, 'denials')])).stdout.trim()).toBe('');
    await waitFor(async () => (await ask(lab.ns('c1'), alice)).status === 200, 10_000, 'the guard to serve again');
    expect(await wgPeers()).not.toContain(bob.publicKey);
    const carol = await c.cli('add-peer', 'carol', '--json');
    expect(carol.code, carol.stderr).toBe(0);
    // Served records the guard had not written yet when serve stopped on the full disk are in its log
    // (event "audit.unrecorded"); all the others are in the database. None is gone without a trace.
    const logged = serves.flatMap((x) => x.json<{ event?: string; records?: { peer: string | null; status: number }[] }>())
      .filter((l) => l.event === 'audit.unrecorded').flatMap((l) => l.records!).filter((r) => r.peer === 'alice' && r.status === 200).length;
    let stored = 0;
    await waitFor(async () => (stored = (await c.sql<{ n: number }>(db(), "SELECT count(*) AS n FROM requests WHERE guard = 'local' AND status = 200 AND peer_id = (SELECT id FROM peers WHERE name = 'alice')"))[0]!.n) + logged === servedToAlice,
      5000, `the ${servedToAlice} requests answered 200 to alice in the database or the log`).catch(async (e: Error) => {
      const rows = await c.sql(db(), "SELECT guard, guard_seq, peer_id, status, refusal, at FROM requests ORDER BY id");
      throw new Error(`${e.message}: ${stored} stored, ${logged} logged; rows ${JSON.stringify(rows)}; logs ${serves.map((x) => `${x.pid} ${x.exit()}\n` + readFileSync(x.out, 'utf8').split('\n').filter((l) => /audit|unrecorded|stop/.test(l)).join('\n') + '\nSTDERR ' + readFileSync(`${x.out}.err`, 'utf8')).join('\n---\n')}`);
    });
    console.log(`answered 200 to alice: ${servedToAlice}; in the database: ${stored}; logged as unrecorded at the restart on the full disk: ${logged}`);
    const m = await httpGet(lab, gwns, 'http://127.0.0.1:9477/metrics');
    expect(metric(m.body, 'wgo_guard_audit_ok')).toBe(1);
    expect(metric(m.body, 'wgo_guard_records_dropped_total') ?? 0).toBe(0);
    expect(serve.pid).toBe(pid);
    expect(serve.exited()).toBe(false);
  });
});
