import type { Config } from '../config.js';
import { generateApiToken, tokenHash } from '../core/api-token.js';
import { mergePolicy, type Policy } from '../core/policy.js';
import { validatePeerName } from '../core/names.js';
import { WgoError, badInput } from '../errors.js';
import { auditRepository } from '../db/audit.js';
import type { Db } from '../db/open.js';
import { peerRepository, type PeerRow } from '../db/peers.js';
import { tokenRepository } from '../db/tokens.js';
import { defaultPolicy, effectiveStatus, type Actor } from './peer-service.js';

/** Returned once by issue: the only moment the token exists outside its holder. */
export interface IssuedToken {
  name: string;
  token: string;
  createdAt: string;
  /** The peer had a token before; it is dead now. */
  replaced: boolean;
}

/** A peer's token as callers may see it: never the token, never its hash. */
export interface TokenStatus {
  name: string;
  /** The peer's effective policy allows tokens. */
  allowed: boolean;
  /** active: the guards accept it; stale: stored but dead (certificate rotated, policy off, peer not active); none. */
  state: 'active' | 'stale' | 'none';
  createdAt: string | null;
  createdBy: string | null;
}

/**
 * Peer-bound API tokens, shared by the CLI and the web UI. A token is issued
 * only to an active peer whose effective policy allows it, is shown once and
 * stored as its SHA-256, bound to the peer's current certificate; one per
 * peer. Each change is one IMMEDIATE transaction with its audit record; the
 * table's triggers move the peer's change sequence, so guards get a new set.
 */
export function tokenService(deps: { db: Db; config: Config; clock?: () => number }) {
  const { db, config } = deps;
  const clock = deps.clock ?? Date.now;
  const peers = peerRepository(db);
  const tokens = tokenRepository(db);
  const audit = auditRepository(db);

  const find = (name: string): PeerRow => {
    validatePeerName(name);
    const p = peers.byName(name);
    if (!p) throw new WgoError('NOT_FOUND', `no peer named "${name}"`);
    return p;
  };
  const allows = (p: PeerRow): boolean =>
    (p.policy === null ? defaultPolicy(config) : mergePolicy(defaultPolicy(config), JSON.parse(p.policy) as Partial<Policy>)).apiTokens;

  return {
    /**
     * A new token for the peer, replacing its previous one. `deliver` shows it to the person
     * inside the transaction: if that fails (a full disk, a closed pipe), nothing is stored and
     * the previous token stays in force — a token nobody saw must not replace one that works.
     */
    issue(name: string, who: Actor, deliver?: (t: IssuedToken) => void): IssuedToken {
      return db.transaction(() => {
        const now = clock();
        const p = find(name);
        const status = effectiveStatus(p, now);
        if (status !== 'active') throw new WgoError('CONFLICT', `peer "${p.name}" is ${status}; only an active peer can have an API token`);
        if (!allows(p)) throw badInput(`the policy of peer "${p.name}" does not allow API tokens; run "set-policy ${p.name} --api-tokens on" first`);
        if (p.certSerial === null) throw new WgoError('CONFLICT', `peer "${p.name}" has no client certificate; rotate-peer issues one`);
        const token = generateApiToken();
        const replaced = tokens.byPeer(p.id) !== undefined;
        tokens.put({ peerId: p.id, tokenSha256: tokenHash(token), certSerial: p.certSerial, createdAt: now, createdBy: who.actor });
        audit.record({ ...who, action: 'peer.token.issue', target: p.name, details: { replaced, certificate: p.certSerial } }, now);
        const issued = { name: p.name, token, createdAt: new Date(now).toISOString(), replaced };
        deliver?.(issued);
        return issued;
      }).immediate();
    },

    revoke(name: string, who: Actor): { name: string; changed: boolean } {
      return db.transaction(() => {
        const now = clock();
        const p = find(name);
        const changed = tokens.remove(p.id);
        if (changed) audit.record({ ...who, action: 'peer.token.revoke', target: p.name }, now);
        return { name: p.name, changed };
      }).immediate();
    },

    /**
     * Deletes every stored token its peer's policy no longer allows (the config's default
     * policy turned tokens off), each with an audit record, so that allowing tokens again later
     * revives none of them. `serve` runs it at start, where a changed config takes effect.
     * Returns the peers whose token went.
     */
    prune(who: Actor): string[] {
      return db.transaction(() => {
        const now = clock();
        const gone: string[] = [];
        for (const t of tokens.byPeerId().values()) {
          const p = peers.byId(t.peerId);
          if (!p || allows(p)) continue;
          tokens.remove(p.id);
          audit.record({ ...who, action: 'peer.token.revoke', target: p.name, details: { reason: 'the policy no longer allows API tokens' } }, now);
          gone.push(p.name);
        }
        return gone;
      }).immediate();
    },

    status(name: string): TokenStatus {
      const p = find(name);
      const t = tokens.byPeer(p.id);
      const allowed = allows(p);
      const live = t !== undefined && allowed && t.certSerial === p.certSerial && effectiveStatus(p, clock()) === 'active';
      return {
        name: p.name,
        allowed,
        state: t === undefined ? 'none' : live ? 'active' : 'stale',
        createdAt: t ? new Date(t.createdAt).toISOString() : null,
        createdBy: t?.createdBy ?? null,
      };
    },
  };
}

export type TokenService = ReturnType<typeof tokenService>;
