import type { DesiredPeer, DesiredState } from './desired.js';
import type { WgDump } from './wg-dump.js';

/** The difference between desired peers and the peers WireGuard has. */
export interface WgPeerDiff {
  /** Peers to add, or whose key material or address changed. */
  upsert: DesiredPeer[];
  /** Public keys of peers WireGuard has but should not. */
  remove: string[];
  /** Addresses whose owner changed or left: their flows must be cut. */
  cutAddresses: string[];
  listenPortWrong: boolean;
}

export function diffWireguard(desired: DesiredState, actual: WgDump): WgPeerDiff {
  const want = new Map(desired.peers.map((p) => [p.publicKey, p]));
  const have = new Map(actual.peers.map((p) => [p.publicKey, p]));
  const upsert: DesiredPeer[] = [];
  const remove: string[] = [];
  const cut = new Set<string>();
  const desiredOwner = new Map(desired.peers.map((p) => [p.address, p.publicKey]));

  for (const p of desired.peers) {
    const h = have.get(p.publicKey);
    const allowed = `${p.address}/32`;
    if (!h || h.presharedKey !== p.presharedKey || h.allowedIps.length !== 1 || h.allowedIps[0] !== allowed) {
      upsert.push(p);
    }
  }
  for (const h of actual.peers) {
    if (!want.has(h.publicKey)) {
      remove.push(h.publicKey);
      for (const a of h.allowedIps) {
        const addr = a.endsWith('/32') ? a.slice(0, -3) : a;
        // The address lost its key: whoever keeps the address now has a new key.
        if (desiredOwner.get(addr) !== h.publicKey) cut.add(addr);
      }
    }
  }
  return {
    upsert,
    remove,
    cutAddresses: [...cut].sort(),
    listenPortWrong: actual.iface.listenPort !== desired.listenPort,
  };
}

export function isWgDiffEmpty(d: WgPeerDiff): boolean {
  return d.upsert.length === 0 && d.remove.length === 0 && !d.listenPortWrong;
}

/**
 * argv for one `wg set` applying a small diff (keys by file path, never on argv),
 * adds before removals. Large diffs use `wg syncconf` with renderSyncConf instead.
 */
export function wgSetArgs(iface: string, diff: WgPeerDiff, listenPort: number): string[] {
  const args = ['set', iface];
  if (diff.listenPortWrong) args.push('listen-port', String(listenPort));
  for (const p of diff.upsert) {
    args.push('peer', p.publicKey, 'preshared-key', p.presharedKeyFile ?? '/dev/null');
    args.push('allowed-ips', `${p.address}/32`);
  }
  for (const k of diff.remove) args.push('peer', k, 'remove');
  return args;
}

/** The whole peer table in `wg syncconf` format (fed through stdin; contains secrets). */
export function renderSyncConf(desired: DesiredState, privateKey: string): string {
  const out = ['[Interface]', `PrivateKey = ${privateKey}`, `ListenPort = ${desired.listenPort}`, ''];
  for (const p of desired.peers) {
    out.push('[Peer]', `PublicKey = ${p.publicKey}`);
    if (p.presharedKey) out.push(`PresharedKey = ${p.presharedKey}`);
    out.push(`AllowedIPs = ${p.address}/32`, '');
  }
  return out.join('\n');
}
