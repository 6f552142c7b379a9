import { isKeyText, publicKeyOf } from '../../src/core/keys.js';
import type { WgDump, WgPeerState } from '../../src/core/wg-dump.js';
import type { LinkInfo, WgImpl, WireguardDriver } from '../../src/system/wireguard.js';

interface FakeIface {
  impl: WgImpl;
  up: boolean;
  addresses: string[];
  privateKey: string | null;
  listenPort: number;
  peers: Map<string, WgPeerState>;
}

const newPeer = (publicKey: string): WgPeerState => ({
  publicKey,
  presharedKey: null,
  endpoint: null,
  allowedIps: [],
  latestHandshake: 0,
  rxBytes: 0,
  txBytes: 0,
  persistentKeepalive: 0,
});

/**
 * An in-memory WireGuard interface behind WireguardDriver. `wg set` argv and
 * `wg syncconf` text are parsed as the real tools do; key files are read from
 * `files` (a path → content map), so a key put where a path belongs fails.
 */
export class FakeWireguard implements WireguardDriver {
  readonly ifaces = new Map<string, FakeIface>();
  /** argv of every `wg set` and text of every `wg syncconf`. */
  readonly setCalls: string[][] = [];
  readonly syncconfCalls: string[] = [];
  /** Operations named here throw. */
  readonly failOn = new Set<keyof WireguardDriver>();

  constructor(
    private readonly log: string[] = [],
    readonly files: Map<string, string> = new Map(),
    private readonly kernelHasWireguard = true,
  ) {}

  private readFile(path: string): string {
    if (path === '/dev/null') return '';
    const text = this.files.get(path);
    if (text === undefined) throw new Error(`fake wg: cannot open ${path}`);
    return text.trim();
  }

  private get(iface: string): FakeIface {
    const i = this.ifaces.get(iface);
    if (!i) throw new Error(`fake wg: Unable to access interface ${iface}: No such device`);
    return i;
  }

  private check(op: keyof WireguardDriver): void {
    if (this.failOn.has(op)) throw new Error(`fake wg ${op} failure`);
  }

  async link(iface: string): Promise<LinkInfo | null> {
    this.check('link');
    const i = this.ifaces.get(iface);
    return i ? { up: i.up, addresses: [...i.addresses] } : null;
  }

  async create(iface: string, want: 'auto' | WgImpl): Promise<WgImpl> {
    this.log.push('wg.create');
    this.check('create');
    if (this.ifaces.has(iface)) throw new Error(`fake ip: RTNETLINK answers: File exists`);
    const impl: WgImpl = want === 'userspace' || !this.kernelHasWireguard ? 'userspace' : 'kernel';
    if (want === 'kernel' && !this.kernelHasWireguard) throw new Error('fake ip: no WireGuard module');
    this.ifaces.set(iface, { impl, up: false, addresses: [], privateKey: null, listenPort: 0, peers: new Map() });
    return impl;
  }

  async addAddress(iface: string, cidr: string): Promise<void> {
    this.log.push(`wg.addAddress ${cidr}`);
    this.check('addAddress');
    const i = this.get(iface);
    if (!i.addresses.includes(cidr)) i.addresses.push(cidr);
  }

  async setUp(iface: string, up: boolean): Promise<void> {
    this.log.push(`wg.setUp ${up}`);
    this.check('setUp');
    this.get(iface).up = up;
  }

  async setIdentity(iface: string, privateKeyFile: string, listenPort: number): Promise<void> {
    this.log.push('wg.setIdentity');
    this.check('setIdentity');
    const i = this.get(iface);
    i.privateKey = this.readFile(privateKeyFile);
    i.listenPort = listenPort;
  }

  async dump(iface: string): Promise<WgDump> {
    this.check('dump');
    const i = this.get(iface);
    const pub = i.privateKey && isKeyText(i.privateKey) ? publicKeyOf(i.privateKey) : null;
    return {
      iface: { privateKey: i.privateKey, publicKey: pub, listenPort: i.listenPort, fwmark: 'off' },
      peers: [...i.peers.values()].map((p) => ({ ...p, allowedIps: [...p.allowedIps] })),
    };
  }

  async set(args: string[]): Promise<void> {
    this.log.push('wg.set');
    this.setCalls.push([...args]);
    this.check('set');
    if (args[0] !== 'set' || args[1] === undefined) throw new Error(`fake wg: bad argv ${args.join(' ')}`);
    const i = this.get(args[1]);
    let peer: WgPeerState | null = null;
    for (let k = 2; k < args.length; k++) {
      const word = args[k]!;
      const value = (): string => {
        const v = args[++k];
        if (v === undefined) throw new Error(`fake wg: ${word} needs a value`);
        return v;
      };
      if (word === 'listen-port') i.listenPort = Number(value());
      else if (word === 'private-key') i.privateKey = this.readFile(value());
      else if (word === 'peer') {
        const key = value();
        if (!isKeyText(key)) throw new Error(`fake wg: invalid public key ${key}`);
        peer = i.peers.get(key) ?? newPeer(key);
        i.peers.set(key, peer);
      } else if (!peer) throw new Error(`fake wg: ${word} before any peer`);
      else if (word === 'remove') i.peers.delete(peer.publicKey);
      else if (word === 'preshared-key') peer.presharedKey = this.readFile(value()) || null;
      else if (word === 'allowed-ips') this.assignAllowedIps(i, peer, value().split(',').filter(Boolean));
      else if (word === 'endpoint') peer.endpoint = value();
      else if (word === 'persistent-keepalive') peer.persistentKeepalive = Number(value());
      else throw new Error(`fake wg: unknown argument ${word}`);
    }
  }

  async syncconf(iface: string, text: string): Promise<void> {
    this.log.push('wg.syncconf');
    this.syncconfCalls.push(text);
    this.check('syncconf');
    const i = this.get(iface);
    const want = new Map<string, { psk: string | null; allowed: string[] }>();
    let current: { key: string | null; psk: string | null; allowed: string[] } | null = null;
    const flush = (): void => {
      if (current?.key) want.set(current.key, { psk: current.psk, allowed: current.allowed });
    };
    for (const line of text.split('\n')) {
      if (line === '[Peer]') {
        flush();
        current = { key: null, psk: null, allowed: [] };
        continue;
      }
      const kv = /^(\w+) = (.*)$/.exec(line);
      if (!kv) continue;
      const [, k, v] = kv;
      if (!current) {
        if (k === 'PrivateKey') i.privateKey = v!;
        if (k === 'ListenPort') i.listenPort = Number(v);
      } else if (k === 'PublicKey') current.key = v!;
      else if (k === 'PresharedKey') current.psk = v!;
      else if (k === 'AllowedIPs') current.allowed = v!.split(',').map((s) => s.trim());
    }
    flush();
    for (const key of [...i.peers.keys()]) if (!want.has(key)) i.peers.delete(key);
    for (const [key, w] of want) {
      const p = i.peers.get(key) ?? newPeer(key);
      p.presharedKey = w.psk;
      i.peers.set(key, p);
      this.assignAllowedIps(i, p, w.allowed);
    }
  }

  async remove(iface: string): Promise<void> {
    this.log.push('wg.remove');
    this.ifaces.delete(iface);
  }

  /** Like the kernel's allowed-ips table: an address belongs to one peer only. */
  private assignAllowedIps(i: FakeIface, peer: WgPeerState, ips: string[]): void {
    for (const other of i.peers.values()) {
      if (other !== peer) other.allowedIps = other.allowedIps.filter((a) => !ips.includes(a));
    }
    peer.allowedIps = [...ips];
  }

  /** Test helper: the peers of an interface by public key. */
  peers(iface: string): Map<string, WgPeerState> {
    return this.get(iface).peers;
  }
}
