import type { WgPeerState } from './wg-dump.js';

/** What the monitor remembers of one peer between two reads of the peer table. */
export interface LinkState {
  publicKey: string;
  endpoint: string | null;
  latestHandshake: number;
  connected: boolean;
  rxSeen: number;
  txSeen: number;
  rxPending: number;
  txPending: number;
  rxTotal: number;
  txTotal: number;
  /** When traffic was last recorded (ms). */
  trafficAt: number;
}

export type ConnectionEventKind = 'handshake' | 'handshake_lost' | 'endpoint_changed' | 'traffic';

export interface ConnectionEvent {
  kind: ConnectionEventKind;
  endpoint: string | null;
  oldEndpoint: string | null;
  rxBytes: number | null;
  txBytes: number | null;
}

export interface MonitorSettings {
  handshakeTimeoutSec: number;
  trafficIntervalMs: number;
}

const event = (kind: ConnectionEventKind, e: Partial<ConnectionEvent> = {}): ConnectionEvent => ({
  kind,
  endpoint: null,
  oldEndpoint: null,
  rxBytes: null,
  txBytes: null,
  ...e,
});

function flushTraffic(s: LinkState, now: number, events: ConnectionEvent[]): LinkState {
  if (s.rxPending === 0 && s.txPending === 0) return s;
  events.push(event('traffic', { endpoint: s.endpoint, rxBytes: s.rxPending, txBytes: s.txPending }));
  return { ...s, rxPending: 0, txPending: 0, trafficAt: now };
}

function freshState(publicKey: string, now: number): LinkState {
  return {
    publicKey, endpoint: null, latestHandshake: 0, connected: false, rxSeen: 0, txSeen: 0,
    rxPending: 0, txPending: 0, rxTotal: 0, txTotal: 0, trafficAt: now,
  };
}

/**
 * One observation of a peer. `cur` is undefined when the peer is not in the
 * WireGuard table (disabled, revoked, expired). A new public key (rotation)
 * starts from a clean state. Counters that went backwards were reset.
 */
export function observePeer(
  prev: LinkState | undefined,
  cur: WgPeerState | undefined,
  now: number,
  cfg: MonitorSettings,
): { next: LinkState | undefined; events: ConnectionEvent[] } {
  const events: ConnectionEvent[] = [];
  if (prev && cur && prev.publicKey !== cur.publicKey) {
    // A rotation: close out the old key's connection and traffic, then start afresh.
    const closed = observePeer(prev, undefined, now, cfg);
    const start = { ...freshState(cur.publicKey, now), rxTotal: prev.rxTotal, txTotal: prev.txTotal };
    const fresh = observePeer(start, cur, now, cfg);
    return { next: fresh.next, events: [...closed.events, ...fresh.events] };
  }
  if (!cur) {
    if (!prev) return { next: undefined, events };
    let s = flushTraffic(prev, now, events);
    if (s.connected) {
      events.push(event('handshake_lost', { endpoint: s.endpoint }));
      s = { ...s, connected: false };
    }
    return { next: s, events };
  }
  const base: LinkState = prev ?? freshState(cur.publicKey, now);
  const drx = cur.rxBytes >= base.rxSeen ? cur.rxBytes - base.rxSeen : cur.rxBytes;
  const dtx = cur.txBytes >= base.txSeen ? cur.txBytes - base.txSeen : cur.txBytes;
  const connected = cur.latestHandshake > 0 && now / 1000 - cur.latestHandshake < cfg.handshakeTimeoutSec;
  let s: LinkState = {
    ...base,
    latestHandshake: cur.latestHandshake,
    rxSeen: cur.rxBytes,
    txSeen: cur.txBytes,
    rxPending: base.rxPending + drx,
    txPending: base.txPending + dtx,
    rxTotal: base.rxTotal + drx,
    txTotal: base.txTotal + dtx,
  };
  if (connected && !base.connected) events.push(event('handshake', { endpoint: cur.endpoint }));
  if (cur.endpoint && base.endpoint && cur.endpoint !== base.endpoint) {
    events.push(event('endpoint_changed', { endpoint: cur.endpoint, oldEndpoint: base.endpoint }));
  }
  s = { ...s, endpoint: cur.endpoint ?? base.endpoint, connected };
  if (now - s.trafficAt >= cfg.trafficIntervalMs || (!connected && base.connected)) s = flushTraffic(s, now, events);
  if (!connected && base.connected) events.push(event('handshake_lost', { endpoint: s.endpoint }));
  return { next: s, events };
}
