import { pino } from 'pino';
import type { DesiredPeer, DesiredState } from '../../src/core/desired.js';
import { generateKeyPair } from '../../src/core/keys.js';
import type { ReconcileDeps } from '../../src/gateway/reconciler.js';
import { FakeConntrack } from '../fakes/conntrack.js';
import { FakeFirewall } from '../fakes/firewall.js';
import { FakeIngress } from '../fakes/ingress.js';
import { FakeWireguard } from '../fakes/wireguard.js';

export const KEY_FILE = '/var/lib/wg-ollama/server.key';

/** A public key that is recognisably peer n (canonical base64 of 32 bytes). */
export function peerKey(n: number, generation = 0): string {
  const b = Buffer.alloc(32);
  b.writeUInt32BE(n + 1, 0);
  b.writeUInt32BE(generation, 4);
  return b.toString('base64');
}

export interface ReconcileEnv {
  /** Every mutating call of every fake, in order. */
  log: string[];
  wg: FakeWireguard;
  fw: FakeFirewall;
  tc: FakeIngress;
  conntrack: FakeConntrack;
  peers: DesiredPeer[];
  desired: DesiredState;
  deps: ReconcileDeps;
  /** Adds peer n (address 10.66.x.y counting from .2) with a PSK file the fake wg can read. */
  peer(n: number, generation?: number): DesiredPeer;
  /** Log entries written since the mark. */
  since(mark: number): string[];
}

export function reconcileEnv(): ReconcileEnv {
  const log: string[] = [];
  const files = new Map<string, string>();
  const server = generateKeyPair();
  files.set(KEY_FILE, server.privateKey + '\n');
  const wg = new FakeWireguard(log, files);
  const fw = new FakeFirewall(log);
  const conntrack = new FakeConntrack(log);
  const tc = new FakeIngress((iface) => wg.ifaces.has(iface), log);
  const env: ReconcileEnv = {
    log,
    wg,
    fw,
    tc,
    conntrack,
    peers: [],
    desired: {
      iface: 'wgo0',
      listenPort: 51820,
      addressCidr: '10.66.0.1/16',
      ollamaHost: '192.168.1.10',
      ollamaPort: 11434,
      peers: [],
    },
    deps: undefined as unknown as ReconcileDeps,
    peer(n, generation = 0) {
      const ip = n + 2;
      const psk = Buffer.alloc(32, (n % 250) + 1);
      psk.writeUInt32BE(generation, 0);
      const file = `/var/lib/wg-ollama/psk/p${n}-${generation}.psk`;
      files.set(file, psk.toString('base64') + '\n');
      return {
        id: n + 1,
        name: `p${n}`,
        publicKey: peerKey(n, generation),
        presharedKey: psk.toString('base64'),
        presharedKeyFile: file,
        address: `10.66.${ip >> 8}.${ip & 255}`,
        expiresAt: null,
      };
    },
    since: (mark) => log.slice(mark),
  };
  env.deps = {
    loadDesired: () => ({ ...env.desired, peers: [...env.desired.peers] }),
    wg,
    fw,
    tc,
    conntrack,
    privateKey: server.privateKey,
    privateKeyFile: KEY_FILE,
    wireguard: 'auto',
    wireguardGo: 'wireguard-go',
    log: pino({ level: 'silent' }),
  };
  return env;
}
