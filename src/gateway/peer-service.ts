import type { Config } from '../config.js';
import { renderClientConfig } from '../core/client-config.js';
import { allocateAddress, intToIp, parseCidr } from '../core/ipv4.js';
import { generateKeyPair, generatePresharedKey, validatePublicKey } from '../core/keys.js';
import { validatePeerName } from '../core/names.js';
import { WgoError, badInput } from '../errors.js';
import { auditRepository } from '../db/audit.js';
import type { Db } from '../db/open.js';
import { peerRepository, type PeerRow } from '../db/peers.js';
import type { PskStore } from './psk-store.js';

export type PeerStatus = 'active' | 'disabled' | 'expired' | 'revoked';

/** A peer as callers see it: no key material beyond the public key. */
export interface PeerView {
  id: number;
  name: string;
  address: string;
  publicKey: string;
  status: PeerStatus;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
}

/** Returned once by add and rotate: the only moment private material exists. */
export interface IssuedPeer {
  peer: PeerView;
  /** Null when the peer brought its own public key. */
  privateKey: string | null;
  config: string;
}

/** Who asked, for the audit log. */
export interface Actor {
  actor: string;
  source: string;
}

export interface PeerServiceDeps {
  db: Db;
  config: Config;
  serverPublicKey: string;
  psk: PskStore;
  clock?: () => number;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function effectiveStatus(p: PeerRow, now: number): PeerStatus {
  if (p.status === 'active' && p.expiresAt !== null && p.expiresAt <= now) return 'expired';
  return p.status;
}

export function toView(p: PeerRow, now: number): PeerView {
  return {
    id: p.id,
    name: p.name,
    address: p.address,
    publicKey: p.publicKey,
    status: effectiveStatus(p, now),
    createdAt: iso(p.createdAt)!,
    expiresAt: iso(p.expiresAt),
    revokedAt: iso(p.revokedAt),
  };
}

/**
 * Peer business rules, shared by the CLI and (later) the web UI. Each change
 * is one IMMEDIATE transaction with its audit record; the reconciler applies it.
 */
export function peerService(deps: PeerServiceDeps) {
  const { db, config, psk } = deps;
  const clock = deps.clock ?? Date.now;
  const peers = peerRepository(db);
  const audit = auditRepository(db);
  const net = parseCidr(config.subnet);

  const configFor = (address: string, privateKey: string | null, presharedKey: string | null): string =>
    renderClientConfig({
      privateKey,
      address,
      serverPublicKey: deps.serverPublicKey,
      presharedKey,
      endpoint: config.endpoint,
      ollamaHost: config.ollamaHost,
      persistentKeepalive: config.persistentKeepalive,
    });

  const checkKeyFree = (key: string): void => {
    if (key === deps.serverPublicKey) throw new WgoError('CONFLICT', "public key is the gateway's own key");
    if (peers.keyInUse(key)) throw new WgoError('CONFLICT', 'public key is already used (or was used) by a peer');
  };

  const find = (name: string): PeerRow => {
    validatePeerName(name);
    const p = peers.byName(name);
    if (!p) throw new WgoError('NOT_FOUND', `no peer named "${name}"`);
    return p;
  };

  const findLive = (name: string, action: string): PeerRow => {
    const p = find(name);
    if (p.status === 'revoked') throw new WgoError('CONFLICT', `peer "${name}" is revoked; cannot ${action} it`);
    return p;
  };

  /** Writes fresh key material: a key pair unless one was brought, and a PSK file. */
  const newKeys = (publicKey: string | undefined) => {
    const pair = publicKey === undefined ? generateKeyPair() : null;
    const presharedKey = config.presharedKeys ? generatePresharedKey() : null;
    return { pair, publicKey: publicKey ?? pair!.publicKey, presharedKey };
  };

  /** Runs fn in an IMMEDIATE transaction after writing the PSK file; removes the file if fn fails. */
  const withPskFile = <T>(presharedKey: string | null, fn: (ref: string | null) => T): T => {
    const ref = presharedKey ? psk.write(presharedKey) : null;
    try {
      return db.transaction(() => fn(ref)).immediate();
    } catch (e) {
      if (ref) psk.remove(ref);
      throw e;
    }
  };

  return {
    add(input: { name: string; publicKey?: string; expiresInMs?: number }, who: Actor): IssuedPeer {
      const name = validatePeerName(input.name);
      const broughtKey = input.publicKey === undefined ? undefined : validatePublicKey(input.publicKey);
      if (input.expiresInMs !== undefined && !(input.expiresInMs > 0)) throw badInput('expiry must be in the future');
      const keys = newKeys(broughtKey);
      return withPskFile(keys.presharedKey, (ref) => {
        const now = clock();
        if (peers.liveByName(name)) throw new WgoError('CONFLICT', `a peer named "${name}" already exists`);
        checkKeyFree(keys.publicKey);
        const ip = allocateAddress(net, peers.usedAddresses());
        if (ip === null) throw new WgoError('POOL_EXHAUSTED', `no free address left in ${config.subnet}`);
        const address = intToIp(ip);
        const expiresAt = input.expiresInMs === undefined ? null : now + input.expiresInMs;
        const id = peers.insert({ name, address, addressInt: ip, publicKey: keys.publicKey, pskRef: ref, expiresAt, now });
        audit.record({ ...who, action: 'peer.add', target: name, details: { address, expiresAt: iso(expiresAt), ownKey: !!broughtKey } }, now);
        return {
          peer: toView(peers.byId(id)!, now),
          privateKey: keys.pair?.privateKey ?? null,
          config: configFor(address, keys.pair?.privateKey ?? null, keys.presharedKey),
        };
      });
    },

    list(options: { includeRevoked?: boolean } = {}): PeerView[] {
      const now = clock();
      return (options.includeRevoked ? peers.all() : peers.live()).map((p) => toView(p, now));
    },

    show(name: string): PeerView {
      return toView(find(name), clock());
    },

    disable(name: string, who: Actor): { peer: PeerView; changed: boolean } {
      return db.transaction(() => {
        const now = clock();
        const p = findLive(name, 'disable');
        if (p.status === 'disabled') return { peer: toView(p, now), changed: false };
        peers.setStatus(p.id, 'disabled', now);
        audit.record({ ...who, action: 'peer.disable', target: p.name }, now);
        return { peer: toView(peers.byId(p.id)!, now), changed: true };
      }).immediate();
    },

    enable(name: string, input: { expiresInMs?: number }, who: Actor): { peer: PeerView; changed: boolean } {
      if (input.expiresInMs !== undefined && !(input.expiresInMs > 0)) throw badInput('expiry must be in the future');
      return db.transaction(() => {
        const now = clock();
        const p = findLive(name, 'enable');
        const expired = p.expiresAt !== null && p.expiresAt <= now;
        if (expired && input.expiresInMs === undefined) {
          throw badInput(`peer "${name}" expired at ${iso(p.expiresAt)}; give --expires to extend it`);
        }
        if (p.status === 'active' && !expired && input.expiresInMs === undefined) return { peer: toView(p, now), changed: false };
        if (input.expiresInMs !== undefined) peers.setExpiry(p.id, now + input.expiresInMs, now);
        peers.setStatus(p.id, 'active', now);
        const expiresAt = input.expiresInMs === undefined ? undefined : iso(now + input.expiresInMs);
        audit.record({ ...who, action: 'peer.enable', target: p.name, details: expiresAt ? { expiresAt } : undefined }, now);
        return { peer: toView(peers.byId(p.id)!, now), changed: true };
      }).immediate();
    },

    rotate(name: string, input: { publicKey?: string }, who: Actor): IssuedPeer {
      validatePeerName(name);
      const broughtKey = input.publicKey === undefined ? undefined : validatePublicKey(input.publicKey);
      const keys = newKeys(broughtKey);
      let oldRef: string | null = null;
      const issued = withPskFile(keys.presharedKey, (ref) => {
        const now = clock();
        const p = findLive(name, 'rotate');
        checkKeyFree(keys.publicKey);
        peers.retireKey(p.publicKey, p.id, now);
        peers.setKeys(p.id, keys.publicKey, ref, now);
        audit.record({ ...who, action: 'peer.rotate', target: p.name, details: { ownKey: !!broughtKey } }, now);
        oldRef = p.pskRef;
        return {
          peer: toView(peers.byId(p.id)!, now),
          privateKey: keys.pair?.privateKey ?? null,
          config: configFor(p.address, keys.pair?.privateKey ?? null, keys.presharedKey),
        };
      });
      if (oldRef) psk.remove(oldRef);
      return issued;
    },

    revoke(name: string, who: Actor): { peer: PeerView; changed: boolean } {
      let oldRef: string | null = null;
      const out = db.transaction(() => {
        const now = clock();
        const p = find(name);
        if (p.status === 'revoked') return { peer: toView(p, now), changed: false };
        peers.setStatus(p.id, 'revoked', now);
        peers.retireKey(p.publicKey, p.id, now);
        audit.record({ ...who, action: 'peer.revoke', target: p.name, details: { address: p.address } }, now);
        oldRef = p.pskRef;
        return { peer: toView(peers.byId(p.id)!, now), changed: true };
      }).immediate();
      if (oldRef) psk.remove(oldRef);
      return out;
    },
  };
}

export type PeerService = ReturnType<typeof peerService>;
