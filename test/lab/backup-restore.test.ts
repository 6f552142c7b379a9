/**
 * Backup → destroy → restore, in the namespace lab (two-box mode, prefix br):
 * a gateway with a guard, a peer with a certificate, a .p12 and an API token
 * streams chats; `backup` runs while serve runs (and serves); then every
 * process is killed and the namespaces and the whole lab directory — the
 * gateway's state directory and config with it — are deleted. A new lab
 * (new namespaces) gets only the backup file: `restore` into a new state
 * directory, `serve` starts, and the SAME client WireGuard config, the same
 * certificate, the same .p12 and the same API token stream chats again; the
 * guard (its directory kept, as a GPU host's disk would be) reconnects with
 * the certificates it had and follows the restored gateway.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientUp, createLab, waitFor, type CliResult, type Lab } from './harness.js';
import {
  BIN, CLIENTS, GUARD_URL, addPeer, clientArgs, createGuardLab, httpGet, processes, requestLog, runClient, startSim,
  type Bg, type GuardHealth, type GuardLab, type Peer, type Processes,
} from './guard-harness.js';

const PASS = 'br lab passphrase, long enough';

interface ChatResult { ok: boolean; chunks: number; evalCount: number; error?: string }
interface TokenResult { ok: boolean; chunks: number; error?: string; status?: number | null }

describe('backup, destroy the gateway, restore into new namespaces', () => {
  let keep: string;
  let gl: GuardLab;
  let alice: Peer;
  let token: string;
  /** What the peer holds, in the kept directory: config text, certificate, key, CA, .p12. */
  let creds: { config: string; crt: string; key: string; ca: string; p12: string; p12Passphrase: string };
  let backupFile: string;
  let oldState: string;

  const chat = (lab: Lab): Promise<ChatResult> => runClient<ChatResult>(lab, lab.ns('c1'), 'ollama-chat.mjs', clientArgs({ ca: creds.ca, crt: creds.crt, key: creds.key }));
  const withToken = async (lab: Lab): Promise<TokenResult> => {
    const r = await lab.exec(lab.ns('c1'), 'node', [join(CLIENTS, 'openai-token.mjs'), '--url', GUARD_URL], { input: `${token}\n`, env: { NODE_EXTRA_CA_CERTS: creds.ca }, timeoutMs: 60_000 });
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as TokenResult;
  };
  /** A streamed chat with curl and the .p12 (certificate and passphrase through curl's config on stdin, not argv). */
  const p12Chat = async (lab: Lab): Promise<{ code: number; lines: { done: boolean }[] }> => {
    const config = `cert = "${creds.p12}:${creds.p12Passphrase}"\ncert-type = "P12"\ncacert = "${creds.ca}"\n`;
    const r = await lab.exec(lab.ns('c1'), 'curl', ['-s', '-S', '-f', '-K', '-', '-m', '20', '-H', 'content-type: application/json',
      '--data-binary', JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'p12' }] }), `${GUARD_URL}/api/chat`], { input: config });
    return { code: r.code, lines: r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { done: boolean }) };
  };

  beforeAll(async () => {
    keep = mkdtempSync(join(tmpdir(), 'wgo-br-keep-'));
    gl = await createGuardLab('br');
    alice = await addPeer(gl.lab, gl.gw, 'alice');
    await gl.waitPeers(1);
    await gl.change(() => gl.gw.cli('set-policy', 'alice', '--api-tokens', 'on'));
    const issued = await gl.change(() => gl.gw.cli('issue-token', 'alice', '--json'));
    token = (JSON.parse(issued.stdout) as { token: string }).token;
    cpSync(join(gl.lab.dir, `peers-${gl.gw.iface}`), join(keep, 'peers'), { recursive: true });
    creds = {
      config: alice.config, crt: join(keep, 'peers', 'alice.crt'), key: join(keep, 'peers', 'alice.key'), ca: join(keep, 'peers', 'ca.crt'),
      p12: join(keep, 'peers', 'alice.p12'), p12Passphrase: alice.p12Passphrase!,
    };
    await clientUp(gl.lab, gl.lab.ns('c1'), 'wgcbr1', creds.config);
    oldState = join(gl.lab.dir, `${gl.gw.iface}-state`);
  });
  afterAll(async () => {
    await gl?.cleanup();
    rmSync(keep, { recursive: true, force: true });
  });

  it('before: the peer streams a chat with its certificate, its .p12 and its token', async () => {
    expect(await chat(gl.lab)).toMatchObject({ ok: true, evalCount: 20 });
    expect((await p12Chat(gl.lab)).lines.at(-1)).toMatchObject({ done: true });
    expect(await withToken(gl.lab)).toMatchObject({ ok: true });
  });

  it('backup while serve runs and serves: a 0600 file, the manifest on --json, the time on status', async () => {
    await waitFor(async () => (await requestLog(gl.gw)).length >= 5, 10_000, 'the first records at the gateway');
    backupFile = join(keep, 'gw.wgobak');
    const [b, during] = await Promise.all([
      gl.lab.exec(gl.lab.ns('gw'), 'node', [BIN, '--config', gl.gw.configFile, 'backup', '--out', backupFile, '--json'], { input: `${PASS}\n` }),
      chat(gl.lab),
    ]);
    expect(b.code, b.stderr).toBe(0);
    expect(during).toMatchObject({ ok: true, evalCount: 20 });
    const out = JSON.parse(b.stdout) as { file: string; manifest: { counts: { peers: Record<string, number>; apiTokens: number; guards: number; requests: number } } };
    expect(out.manifest.counts).toMatchObject({ peers: { active: 1 }, apiTokens: 1, guards: 1 });
    expect(out.manifest.counts.requests).toBeGreaterThanOrEqual(5);
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);
    const status = await gl.gw.cliJson<{ daemon: { running: boolean }; lastBackup: { file: string } | null }>('status');
    expect(status).toMatchObject({ daemon: { running: true }, lastBackup: { file: backupFile } });
  });

  it('the gateway is destroyed: processes, namespaces, state directory and config are gone', async () => {
    await gl.stopGuard('SIGTERM');
    // The GPU host's disk survives: the guard's directory (config, certificates, spool) is kept.
    cpSync(gl.guardDir, join(keep, 'guard'), { recursive: true });
    await gl.cleanup();
    expect(existsSync(oldState)).toBe(false);
    expect(existsSync(gl.gw.configFile)).toBe(false);
    const r = await gl.lab.exec(gl.lab.ns('gw'), 'true', []);
    expect(r.code).not.toBe(0); // no such namespace
  });

  describe('restored into new namespaces', () => {
    let lab: Lab;
    let procs: Processes;
    let configFile: string;
    let guard: Bg;
    /** When the chats through the restored gateway began. */
    let chatsAt = 0;
    const cli = (...args: string[]): Promise<CliResult> => lab.exec(lab.ns('gw'), 'node', [BIN, '--config', configFile, ...args]);
    const health = async (): Promise<GuardHealth | null> => {
      const r = await httpGet(lab, lab.ns('gpu'), 'http://127.0.0.1:9478/healthz');
      return r.status === 0 ? null : (JSON.parse(r.body) as GuardHealth);
    };

    beforeAll(async () => {
      lab = await createLab('br', { gpuListener: false });
      procs = processes(lab);
      configFile = join(lab.dir, 'restored.json');
    });
    afterAll(async () => {
      await procs?.stopAll();
      await lab?.cleanup();
    });

    it('a wrong passphrase is refused and writes nothing', async () => {
      const r = await cli('restore', backupFile, '--state-dir', join(lab.dir, 'state'));
      expect(r.code).toBe(2);
      expect(r.stderr).toBe('wg-ollama: no passphrase: give it as the first line of standard input (or --passphrase-file FILE)');
      const w = await lab.exec(lab.ns('gw'), 'node', [BIN, '--config', configFile, 'restore', backupFile, '--state-dir', join(lab.dir, 'state')], { input: 'not the right passphrase\n' });
      expect(w.code).toBe(2);
      expect(w.stderr).toBe('wg-ollama: wrong passphrase for this backup (or its header was changed)');
      expect(existsSync(join(lab.dir, 'state'))).toBe(false);
      expect(existsSync(configFile)).toBe(false);
    });

    it('restore writes the state directory and config; serve starts on them', async () => {
      const r = await lab.exec(lab.ns('gw'), 'node', [BIN, '--config', configFile, 'restore', backupFile, '--state-dir', join(lab.dir, 'state'), '--json'], { input: `${PASS}\n` });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ stateDir: join(lab.dir, 'state'), configFile, movedAside: [] });
      expect(statSync(join(lab.dir, 'state')).mode & 0o777).toBe(0o700);
      expect(JSON.parse(readFileSync(configFile, 'utf8'))).toMatchObject({ stateDir: join(lab.dir, 'state'), interface: 'wgobr' });
      procs.spawn(lab.ns('gw'), 'node', [BIN, '--config', configFile, 'serve'], 'serve');
      await waitFor(async () => {
        const s = await cli('status', '--json');
        return s.code === 0 && (JSON.parse(s.stdout) as { daemon: { running: boolean } }).daemon.running;
      }, 15_000, 'the restored serve to answer');
      const peers = JSON.parse((await cli('list-peers', '--json')).stdout) as { name: string; status: string; certificateSerial: string }[];
      expect(peers).toMatchObject([{ name: 'alice', status: 'active', certificateSerial: alice.certificateSerial }]);
      const status = JSON.parse((await cli('status', '--json')).stdout) as { lastBackup: { file: string } };
      expect(status.lastBackup.file).toBe(backupFile);
    });

    it('the guard reconnects with the certificates it had and serves the peer set of the restored gateway', async () => {
      await startSim(lab, procs, lab.ns('gpu'));
      guard = procs.spawn(lab.ns('gpu'), 'node', [BIN, 'guard', '--config', join(keep, 'guard', 'guard.json')], 'guard');
      await waitFor(async () => {
        if (guard.exited()) throw new Error(`the guard exited: ${readFileSync(`${guard.out}.err`, 'utf8')}`);
        const h = await health();
        return h?.ok === true && h.gateway === 'connected' && h.peers === 1;
      }, 20_000, 'the guard to sync with the restored gateway');
    });

    it('the same WireGuard config, certificate, .p12 and API token stream chats again', async () => {
      await clientUp(lab, lab.ns('c1'), 'wgcbr1', creds.config);
      chatsAt = Date.now();
      expect(await chat(lab)).toMatchObject({ ok: true, evalCount: 20 });
      const p12 = await p12Chat(lab);
      expect(p12.code).toBe(0);
      expect(p12.lines.length).toBeGreaterThan(2);
      expect(p12.lines.at(-1)).toMatchObject({ done: true });
      expect(await withToken(lab)).toMatchObject({ ok: true });
    });

    it("the guard's records reach the restored gateway, and a change there reaches the guard", async () => {
      const gateway = { cli, configFile, iface: 'wgobr' } as Parameters<typeof requestLog>[0];
      // chat + tags, the .p12 chat, the token's chat + models: five served requests.
      await waitFor(async () => (await requestLog(gateway)).filter((r) => r.guard === 'gpu1' && r.status === 200 && Date.parse(r.at) >= chatsAt - 1000).length === 5, 15_000, 'the records of the new chats');
      const before = (await health())!.peersVersion;
      const r = await cli('revoke-token', 'alice');
      expect(r.code, r.stderr).toBe(0);
      await waitFor(async () => (await health())?.peersVersion !== before, 5000, 'the guard to get the new peer set');
      expect(await withToken(lab)).toMatchObject({ ok: false, status: 401 });
      const guards = JSON.parse((await cli('list-guards', '--json')).stdout) as { name: string; lastSeen: string }[];
      expect(guards).toMatchObject([{ name: 'gpu1' }]);
      expect(Date.now() - Date.parse(guards[0]!.lastSeen)).toBeLessThan(30_000);
    });
  });
});
