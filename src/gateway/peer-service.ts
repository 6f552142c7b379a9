import type { Config } from '../config.js';
import { renderClientConfig } from '../core/client-config.js';
import { allocateAddress, intToIp, parseCidr } from '../core/ipv4.js';
import { generateKeyPair, generatePresharedKey, validatePublicKey } from '../core/keys.js';
import { validatePeerName } from '../core/names.js';
import { WgoError, asDiskFull, badInput, isDiskFull } from '../errors.js';
import type { Denial } from '../core/denials.js';
import { auditRepository } from '../db/audit.js';
import type { Db } from '../db/open.js';
import { peerRepository, type PeerRow } from '../db/peers.js';
import { certificateRepository } from '../db/certificates.js';
import { tokenRepository } from '../db/tokens.js';
import { issueCertificate } from '../pki/ca.js';
import { DEFAULT_POLICY, mergePolicy, policyOverrideSchema, type Policy } from '../core/policy.js';
import { generateLeafKey, type CaStore } from './ca-store.js';
import type { PskStore } from './psk-store.js';
import type { DenialJournal } from './denials.js';

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
  /** Serial of the current client certificate (null for peers made before certificates existed). */
  certificateSerial: string | null;
  /** Policy overrides set for this peer (the rest comes from the configured default). */
  policy: Partial<Policy> | null;
}

/** Returned once by add and rotate: the only moment private material exists. */
export interface IssuedPeer {
  peer: PeerView;
  /** Null when the peer brought its own public key. */
  privateKey: string | null;
  config: string;
  /** The peer's client certificate and its key (PEM): also shown only once. */
  certificate: { certPem: string; keyPem: string; serial: string; notAfter: string };
  caCertificate: string;
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
  ca: CaStore;
  /** Where a revoke or disable goes when the database cannot save it (a full disk); without it, such a change fails. */
  denials?: DenialJournal;
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
    certificateSerial: p.certSerial,
    policy: p.policy === null ? null : (JSON.parse(p.policy) as Partial<Policy>),
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
  const certs = certificateRepository(db);
  const tokens = tokenRepository(db);
  const net = parseCidr(config.subnet);

  /**
   * Signs a client certificate for the peer (inside the caller's transaction)
   * and makes it the current one: CN = name, SAN IP = tunnel address, valid
   * until the peer's expiry or certificateDays, whichever comes first.
   */
  const issueCert = (p: { id: number; name: string; address: string; expiresAt: number | null }, key: { publicKeyPem: string; keyPem: string }, now: number) => {
    const { ca } = deps.ca.ensure();
    const max = now + config.certificateDays * 86_400_000;
    // An expired peer being rotated gets the full validity: it is useless until enabled again anyway.
    const notAfter = new Date(p.expiresAt === null || p.expiresAt <= now ? max : Math.min(p.expiresAt, max));
    const cert = issueCertificate(ca, { role: 'peer', commonName: p.name, ipAddresses: [p.address], notAfter, now: new Date(now), publicKeyPem: key.publicKeyPem });
    certs.insert({
      serial: cert.serial, role: 'peer', peerId: p.id, guardId: null, commonName: p.name,
      notBefore: cert.notBefore.getTime(), notAfter: cert.notAfter.getTime(), issuedAt: now, certPem: cert.certPem,
    });
    peers.setCertSerial(p.id, cert.serial);
    return {
      certificate: { certPem: cert.certPem, keyPem: key.keyPem, serial: cert.serial, notAfter: cert.notAfter.toISOString() },
      caCertificate: ca.certPem,
    };
  };

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

  /**
   * Runs fn in an IMMEDIATE transaction after writing the PSK file; removes the
   * file if fn fails. A full disk (the file or the commit) is DISK_FULL: nothing was changed.
   */
  const withPskFile = <T>(presharedKey: string | null, fn: (ref: string | null) => T): T => {
    let ref: string | null = null;
    try {
      ref = presharedKey ? psk.write(presharedKey) : null;
      return db.transaction(() => fn(ref)).immediate();
    } catch (e) {
      if (ref) psk.remove(ref);
      throw asDiskFull(e);
    }
  };

  const disableNow = (name: string, who: Actor): { peer: PeerView; changed: boolean } =>
    db.transaction(() => {
      const now = clock();
      const p = findLive(name, 'disable');
      if (p.status === 'disabled') return { peer: toView(p, now), changed: false };
      peers.setStatus(p.id, 'disabled', now);
      audit.record({ ...who, action: 'peer.disable', target: p.name }, now);
      return { peer: toView(peers.byId(p.id)!, now), changed: true };
    }).immediate();

  const revokeNow = (name: string, who: Actor): { peer: PeerView; changed: boolean } => {
    let oldRef: string | null = null;
    const out = db.transaction(() => {
      const now = clock();
      const p = find(name);
      if (p.status === 'revoked') return { peer: toView(p, now), changed: false };
      peers.setStatus(p.id, 'revoked', now);
      peers.retireKey(p.publicKey, p.id, now);
      certs.revokePeerCerts(p.id, now);
      audit.record({ ...who, action: 'peer.revoke', target: p.name, details: { address: p.address } }, now);
      oldRef = p.pskRef;
      return { peer: toView(peers.byId(p.id)!, now), changed: true };
    }).immediate();
    if (oldRef) psk.remove(oldRef);
    return out;
  };

  /**
   * A revoke or disable the database could not save (a full disk): kept in the
   * denial journal instead, which the daemon applies at once and saves when
   * space returns (gateway/denials.ts). `saved: false` says so. Any other
   * failure, or no room in the journal either, is thrown: nothing changed.
   */
  const deny = (action: Denial['action'], name: string, who: Actor, e: unknown): { peer: PeerView; changed: boolean; saved: false } => {
    if (!isDiskFull(e) || !deps.denials) throw asDiskFull(e);
    const now = clock();
    const p = find(name);
    try {
      deps.denials.add({ action, peerId: p.id, name: p.name, publicKey: p.publicKey, address: p.address, actor: who.actor, source: who.source, at: now });
    } catch (e2) {
      throw new WgoError('DISK_FULL', `the disk is full (${(e as Error).message}) and the ${action} could not be kept aside either (${(e2 as Error).message}): nothing was changed, the peer still has access`, { cause: e });
    }
    return { peer: { ...toView(p, now), status: action === 'revoke' ? 'revoked' : 'disabled' }, changed: true, saved: false };
  };

  return {
    add(input: { name: string; publicKey?: string; expiresInMs?: number }, who: Actor): IssuedPeer {
      const name = validatePeerName(input.name);
      const broughtKey = input.publicKey === undefined ? undefined : validatePublicKey(input.publicKey);
      if (input.expiresInMs !== undefined && !(input.expiresInMs > 0)) throw badInput('expiry must be in the future');
      const keys = newKeys(broughtKey);
      const certKey = generateLeafKey();
      return withPskFile(keys.presharedKey, (ref) => {
        const now = clock();
        if (peers.liveByName(name)) throw new WgoError('CONFLICT', `a peer named "${name}" already exists`);
        checkKeyFree(keys.publicKey);
        const ip = allocateAddress(net, peers.usedAddresses());
        if (ip === null) throw new WgoError('POOL_EXHAUSTED', `no free address left in ${config.subnet}`);
        const address = intToIp(ip);
        const expiresAt = input.expiresInMs === undefined ? null : now + input.expiresInMs;
        const id = peers.insert({ name, address, addressInt: ip, publicKey: keys.publicKey, pskRef: ref, expiresAt, now });
        const tls = issueCert({ id, name, address, expiresAt }, certKey, now);
        audit.record({ ...who, action: 'peer.add', target: name, details: { address, expiresAt: iso(expiresAt), ownKey: !!broughtKey, certificate: tls.certificate.serial } }, now);
        return {
          ...tls,
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

    /** `saved: false`: the disk is full, the peer's access is taken away now and the change saved when space returns. */
    disable(name: string, who: Actor): { peer: PeerView; changed: boolean; saved?: false } {
      try {
        return disableNow(name, who);
      } catch (e) {
        return deny('disable', name, who, e);
      }
    },

    enable(name: string, input: { expiresInMs?: number }, who: Actor): { peer: PeerView; changed: boolean; warning?: string } {
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
        const cert = p.certSerial ? certs.bySerial(p.certSerial) : undefined;
        const warning = cert && input.expiresInMs !== undefined && cert.notAfter < now + input.expiresInMs
          ? `the peer's certificate expires at ${iso(cert.notAfter)}, before the new expiry; rotate-peer issues one that lasts`
          : undefined;
        return { peer: toView(peers.byId(p.id)!, now), changed: true, ...(warning ? { warning } : {}) };
      }).immediate();
    },

    rotate(name: string, input: { publicKey?: string }, who: Actor): IssuedPeer {
      validatePeerName(name);
      const broughtKey = input.publicKey === undefined ? undefined : validatePublicKey(input.publicKey);
      const keys = newKeys(broughtKey);
      const certKey = generateLeafKey();
      let oldRef: string | null = null;
      const issued = withPskFile(keys.presharedKey, (ref) => {
        const now = clock();
        const p = findLive(name, 'rotate');
        checkKeyFree(keys.publicKey);
        peers.retireKey(p.publicKey, p.id, now);
        peers.setKeys(p.id, keys.publicKey, ref, now);
        const tls = issueCert(p, certKey, now);
        certs.revokePeerCerts(p.id, now, tls.certificate.serial);
        audit.record({ ...who, action: 'peer.rotate', target: p.name, details: { ownKey: !!broughtKey, certificate: tls.certificate.serial } }, now);
        oldRef = p.pskRef;
        return {
          ...tls,
          peer: toView(peers.byId(p.id)!, now),
          privateKey: keys.pair?.privateKey ?? null,
          config: configFor(p.address, keys.pair?.privateKey ?? null, keys.presharedKey),
        };
      });
      if (oldRef) psk.remove(oldRef);
      return issued;
    },

    /**
     * Replaces a peer's policy overrides (validated; unknown fields refused).
     * `null` goes back to the configured default.
     */
    setPolicy(name: string, override: unknown, who: Actor): { peer: PeerView; effective: Policy; changed: boolean } {
      let value: Partial<Policy> | null = null;
      if (override !== null) {
        const r = policyOverrideSchema.safeParse(override);
        if (!r.success) throw badInput(`invalid policy: ${r.error.issues.map((i) => `${i.path.join('.') || '(policy)'}: ${i.message}`).join('; ')}`);
        value = Object.keys(r.data).length ? (r.data as Partial<Policy>) : null;
      }
      const text = value === null ? null : JSON.stringify(value);
      return db.transaction(() => {
        const now = clock();
        const p = findLive(name, 'change the policy of');
        const changed = p.policy !== text;
        const effective = mergePolicy(defaultPolicy(config), value ?? {});
        if (changed) {
          peers.setPolicy(p.id, text, now);
          audit.record({ ...who, action: 'peer.policy', target: p.name, details: { policy: value } }, now);
          // A policy that no longer allows API tokens kills the peer's token for good (turning it on again revives nothing).
          if (!effective.apiTokens && tokens.remove(p.id)) audit.record({ ...who, action: 'peer.token.revoke', target: p.name, details: { reason: 'policy' } }, now);
        }
        return { peer: toView(peers.byId(p.id)!, now), effective, changed };
      }).immediate();
    },

    /** `saved: false`: as for disable. */
    revoke(name: string, who: Actor): { peer: PeerView; changed: boolean; saved?: false } {
      try {
        return revokeNow(name, who);
      } catch (e) {
        return deny('revoke', name, who, e);
      }
    },

    /**
     * Saves a denial kept while the disk was full, under the admin who asked
     * (the source says when). A peer revoked since, or rotated since (a
     * disable of keys that are gone), needs nothing. Throws while the disk is still full.
     */
    saveDenial(d: Denial): void {
      const p = peers.byId(d.peerId);
      if (!p || p.status === 'revoked' || p.publicKey !== d.publicKey) return;
      const who = { actor: d.actor, source: `${d.source} (saved late: the disk was full at ${iso(d.at)})` };
      if (d.action === 'revoke') revokeNow(p.name, who);
      else disableNow(p.name, who);
    },
  };
}

export type PeerService = ReturnType<typeof peerService>;

/** The configured default policy (config.policy over the built-in defaults). */
export function defaultPolicy(config: Config): Policy {
  return mergePolicy(DEFAULT_POLICY, config.policy as Partial<Policy>);
}
