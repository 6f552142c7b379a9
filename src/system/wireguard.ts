import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WgoError } from '../errors.js';
import { removeFile, writeSecretFile } from './files.js';
import { parseWgDump, type WgDump } from '../core/wg-dump.js';
import type { Runner } from './exec.js';

export type WgImpl = 'kernel' | 'userspace';

export interface LinkInfo {
  up: boolean;
  addresses: string[];
}

/** The WireGuard interface and its peer table, behind one small interface (see test/fakes). */
export interface WireguardDriver {
  /** null when the interface does not exist. */
  link(iface: string): Promise<LinkInfo | null>;
  /** Creates the interface: kernel module if wanted and present, else wireguard-go. */
  create(iface: string, want: 'auto' | WgImpl, wireguardGo: string): Promise<WgImpl>;
  addAddress(iface: string, cidr: string): Promise<void>;
  setUp(iface: string, up: boolean): Promise<void>;
  /** Private key from a 0600 file and listen port. */
  setIdentity(iface: string, privateKeyFile: string, listenPort: number): Promise<void>;
  dump(iface: string): Promise<WgDump>;
  /** One `wg set` process with many peers (paths only on argv, keys in files). */
  set(args: string[]): Promise<void>;
  /**
   * One `wg syncconf` from a 0600 file that is removed afterwards (the text
   * holds keys). Not stdin: Node gives a child a socket, which `wg` cannot fopen.
   */
  syncconf(iface: string, text: string): Promise<void>;
  remove(iface: string): Promise<void>;
}

/** `tmpDir`: a private directory for syncconf's short-lived key file (the state directory). */
export function createWireguard(run: Runner, options: { tmpDir?: string } = {}): WireguardDriver {
  return {
    async link(iface) {
      const r = await run('ip', ['-j', 'addr', 'show', 'dev', iface], { okExitCodes: [1] });
      if (r.exitCode !== 0) return null;
      const [info] = JSON.parse(r.stdout) as { flags?: string[]; addr_info?: { family: string; local: string; prefixlen: number }[] }[];
      if (!info) return null;
      return {
        up: (info.flags ?? []).includes('UP'),
        addresses: (info.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
      };
    },
    async create(iface, want, wireguardGo) {
      if (want !== 'userspace') {
        const r = await run('ip', ['link', 'add', 'dev', iface, 'type', 'wireguard'], { okExitCodes: [1, 2] });
        if (r.exitCode === 0) return 'kernel';
        if (want === 'kernel') {
          throw new WgoError('MISSING_PROGRAM', `the kernel has no WireGuard module (${r.stderr.trim()}); set "wireguard": "auto" to use wireguard-go`);
        }
      }
      // wireguard-go daemonises itself and returns once the interface exists.
      await run(wireguardGo, [iface], { timeoutMs: 15_000 });
      return 'userspace';
    },
    async addAddress(iface, cidr) {
      await run('ip', ['addr', 'replace', cidr, 'dev', iface]);
    },
    async setUp(iface, up) {
      await run('ip', ['link', 'set', 'dev', iface, up ? 'up' : 'down']);
    },
    async setIdentity(iface, privateKeyFile, listenPort) {
      await run('wg', ['set', iface, 'private-key', privateKeyFile, 'listen-port', String(listenPort)]);
    },
    async dump(iface) {
      const r = await run('wg', ['show', iface, 'dump']);
      return parseWgDump(r.stdout);
    },
    async set(args) {
      await run('wg', args);
    },
    async syncconf(iface, text) {
      const dir = options.tmpDir ?? mkdtempSync(join(tmpdir(), 'wg-ollama-'));
      const file = join(dir, `syncconf-${randomBytes(8).toString('hex')}.conf`);
      try {
        writeSecretFile(file, text, { exclusive: true });
        await run('wg', ['syncconf', iface, file]);
      } finally {
        removeFile(file);
        if (!options.tmpDir) rmSync(dir, { recursive: true, force: true });
      }
    },
    async remove(iface) {
      await run('ip', ['link', 'del', 'dev', iface], { okExitCodes: [1] });
    },
  };
}
