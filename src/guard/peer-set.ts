import type { RequestPolicy } from '../core/policy.js';

/** One peer as the guard knows it: who may present which certificate, from where, under what policy. */
export interface GuardPeer {
  name: string;
  /** Tunnel address: a certificate is accepted only from this source address. */
  address: string;
  /** Serial of the peer's current client certificate (normalised hex). */
  serial: string;
  expiresAt: number | null;
  /** The policy the guard applies (apiTokens is the gateway's: it shows here as tokenSha256). */
  policy: RequestPolicy;
  /**
   * SHA-256 (hex) of the peer's API token: present only while its policy allows
   * tokens and the token is bound to `serial`. Absent in sets from older gateways.
   */
  tokenSha256?: string | null;
}

/** The versioned set of active peers the guard enforces; it changes only as a whole. */
export interface PeerSet {
  version: string;
  peers: GuardPeer[];
  /** Keep prompt text in request records (the gateway's logPrompts). */
  logPrompts: boolean;
  /**
   * Tokens each peer used today as the gateway knew it when the set was made (UTC day). No
   * version follows it, so it is only a lower bound for the budget (guard/budget.ts); the
   * current figures come with every record push and from GET /v1/usage.
   */
  tokensToday: Record<string, number>;
  /** The UTC day tokensToday is for. */
  day: string;
  /** Record fields the gateway stores beyond the original ones (core/request-record.ts RECORD_FIELDS); absent from older gateways. */
  recordFields?: string[];
}

export const EMPTY_PEER_SET: PeerSet = { version: '', peers: [], logPrompts: false, tokensToday: {}, day: '' };

/** Certificate serial → peer, for the TLS identity check. */
export function indexPeerSet(set: PeerSet): Map<string, GuardPeer> {
  return new Map(set.peers.map((p) => [p.serial, p]));
}
