/**
 * Parser for `wg show INTERFACE dump`: one tab-separated line for the
 * interface, then one per peer. Keys are kept in memory only.
 */
import { WgoError } from '../errors.js';

export interface WgInterfaceState {
  privateKey: string | null;
  publicKey: string | null;
  listenPort: number;
  fwmark: string;
}

export interface WgPeerState {
  publicKey: string;
  presharedKey: string | null;
  endpoint: string | null;
  allowedIps: string[];
  /** Unix seconds of the latest handshake, 0 when none. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number;
}

export interface WgDump {
  iface: WgInterfaceState;
  peers: WgPeerState[];
}

const none = (v: string | undefined): string | null => (v === undefined || v === '(none)' ? null : v);

function num(v: string | undefined, what: string): number {
  const n = v === 'off' ? 0 : v === undefined || v === '' ? NaN : Number(v);
  if (!Number.isFinite(n)) throw new WgoError('INTERNAL', `wg dump: ${what} "${v}" is not a number`);
  return n;
}

export function parseWgDump(text: string): WgDump {
  const lines = text.split('\n').filter((l) => l.length > 0);
  if (lines.length === 0) throw new WgoError('INTERNAL', 'wg dump: empty output');
  const head = lines[0]!.split('\t');
  if (head.length !== 4) throw new WgoError('INTERNAL', `wg dump: interface line has ${head.length} fields, expected 4`);
  const iface: WgInterfaceState = {
    privateKey: none(head[0]),
    publicKey: none(head[1]),
    listenPort: num(head[2], 'listen port'),
    fwmark: head[3]!,
  };
  const peers = lines.slice(1).map((line, i): WgPeerState => {
    const f = line.split('\t');
    if (f.length !== 8) throw new WgoError('INTERNAL', `wg dump: peer line ${i + 1} has ${f.length} fields, expected 8`);
    const allowed = none(f[3]);
    return {
      publicKey: f[0]!,
      presharedKey: none(f[1]),
      endpoint: none(f[2]),
      allowedIps: allowed ? allowed.split(',') : [],
      latestHandshake: num(f[4], 'latest handshake'),
      rxBytes: num(f[5], 'rx bytes'),
      txBytes: num(f[6], 'tx bytes'),
      persistentKeepalive: num(f[7], 'persistent keepalive'),
    };
  });
  return { iface, peers };
}
