import type { GuardPeer, PeerSet } from '../core/wire.js';

/** What a guard enforces before its first peer set arrives: nobody gets in. */
export const EMPTY_PEER_SET: PeerSet = { version: '', peers: [], logPrompts: false, tokensToday: {}, day: '' };

/** Certificate serial → peer, for the TLS identity check. */
export function indexPeerSet(set: PeerSet): Map<string, GuardPeer> {
  return new Map(set.peers.map((p) => [p.serial, p]));
}
