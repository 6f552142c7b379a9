import type { Db } from './open.js';

export type StoredStatus = 'active' | 'disabled' | 'revoked';

export interface PeerRow {
  id: number;
  name: string;
  address: string;
  addressInt: number;
  publicKey: string;
  pskRef: string | null;
  status: StoredStatus;
  createdAt: number;
  updatedAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  expiryNotedAt: number | null;
  changeSeq: number;
  /** Serial of the peer's current client certificate. */
  certSerial: string | null;
  /** JSON overrides of the default policy, or null. */
  policy: string | null;
}

export interface NewPeer {
  name: string;
  address: string;
  addressInt: number;
  publicKey: string;
  pskRef: string | null;
  expiresAt: number | null;
  now: number;
}

const COLUMNS = `id, name, address, address_int AS addressInt, public_key AS publicKey, psk_ref AS pskRef,
  status, created_at AS createdAt, updated_at AS updatedAt, expires_at AS expiresAt,
  revoked_at AS revokedAt, expiry_noted_at AS expiryNotedAt, change_seq AS changeSeq, cert_serial AS certSerial, policy`;

/** Peer repository: raw SQL, statements prepared once. */
export function peerRepository(db: Db) {
  const s = {
    insert: db.prepare(`INSERT INTO peers (name, address, address_int, public_key, psk_ref, status, created_at, updated_at, expires_at)
      VALUES (@name, @address, @addressInt, @publicKey, @pskRef, 'active', @now, @now, @expiresAt)`),
    byId: db.prepare(`SELECT ${COLUMNS} FROM peers WHERE id = ?`),
    liveByName: db.prepare(`SELECT ${COLUMNS} FROM peers WHERE name = ? COLLATE NOCASE AND status <> 'revoked'`),
    anyByName: db.prepare(`SELECT ${COLUMNS} FROM peers WHERE name = ? COLLATE NOCASE ORDER BY (status <> 'revoked') DESC, id DESC LIMIT 1`),
    all: db.prepare(`SELECT ${COLUMNS} FROM peers ORDER BY name, id`),
    live: db.prepare(`SELECT ${COLUMNS} FROM peers WHERE status <> 'revoked' ORDER BY name`),
    active: db.prepare(`SELECT ${COLUMNS} FROM peers WHERE status = 'active' AND (expires_at IS NULL OR expires_at > ?) ORDER BY address_int`),
    usedAddresses: db.prepare(`SELECT address_int FROM peers`).pluck(),
    keyInUse: db.prepare(`SELECT 1 FROM peers WHERE public_key = @k UNION ALL SELECT 1 FROM retired_keys WHERE public_key = @k`).pluck(),
    setStatus: db.prepare(`UPDATE peers SET status = @status, updated_at = @now, revoked_at = @revokedAt WHERE id = @id`),
    setExpiry: db.prepare(`UPDATE peers SET expires_at = @expiresAt, expiry_noted_at = NULL, updated_at = @now WHERE id = @id`),
    setKeys: db.prepare(`UPDATE peers SET public_key = @publicKey, psk_ref = @pskRef, updated_at = @now WHERE id = @id`),
    retireKey: db.prepare(`INSERT OR IGNORE INTO retired_keys (public_key, peer_id, retired_at) VALUES (?, ?, ?)`),
    nextExpiry: db.prepare(`SELECT min(expires_at) FROM peers WHERE status = 'active' AND expires_at > ?`).pluck(),
    newlyExpired: db.prepare(`SELECT ${COLUMNS} FROM peers WHERE status = 'active' AND expires_at <= ? AND expiry_noted_at IS NULL`),
    noteExpiry: db.prepare(`UPDATE peers SET expiry_noted_at = ? WHERE id = ?`),
    pskRefs: db.prepare(`SELECT psk_ref FROM peers WHERE psk_ref IS NOT NULL`).pluck(),
    changedSince: db.prepare(`SELECT ${COLUMNS} FROM peers WHERE change_seq > ? ORDER BY change_seq`),
    maxSeq: db.prepare(`SELECT coalesce(max(change_seq), 0) FROM peers`).pluck(),
    setCertSerial: db.prepare(`UPDATE peers SET cert_serial = ? WHERE id = ?`),
    setPolicy: db.prepare(`UPDATE peers SET policy = ?, updated_at = ? WHERE id = ?`),
  };
  return {
    insert(p: NewPeer): number {
      return Number(s.insert.run(p).lastInsertRowid);
    },
    byId: (id: number) => s.byId.get(id) as PeerRow | undefined,
    /** The live (not revoked) peer with this name, else the newest revoked one. */
    byName: (name: string) => s.anyByName.get(name) as PeerRow | undefined,
    liveByName: (name: string) => s.liveByName.get(name) as PeerRow | undefined,
    all: () => s.all.all() as PeerRow[],
    live: () => s.live.all() as PeerRow[],
    /** Peers that belong in WireGuard and the firewall right now. */
    active: (now: number) => s.active.all(now) as PeerRow[],
    usedAddresses: () => new Set(s.usedAddresses.all() as number[]),
    keyInUse: (k: string) => s.keyInUse.get({ k }) !== undefined,
    setStatus(id: number, status: StoredStatus, now: number): void {
      s.setStatus.run({ id, status, now, revokedAt: status === 'revoked' ? now : null });
    },
    setExpiry: (id: number, expiresAt: number | null, now: number) => void s.setExpiry.run({ id, expiresAt, now }),
    setKeys(id: number, publicKey: string, pskRef: string | null, now: number): void {
      s.setKeys.run({ id, publicKey, pskRef, now });
    },
    retireKey: (publicKey: string, peerId: number, now: number) => void s.retireKey.run(publicKey, peerId, now),
    nextExpiry: (now: number) => (s.nextExpiry.get(now) as number | null) ?? null,
    newlyExpired: (now: number) => s.newlyExpired.all(now) as PeerRow[],
    noteExpiry: (id: number, now: number) => void s.noteExpiry.run(now, id),
    pskRefs: () => new Set(s.pskRefs.all() as string[]),
    /** Rows inserted or changed after the given change sequence number. */
    changedSince: (seq: number) => s.changedSince.all(seq) as PeerRow[],
    maxSeq: () => s.maxSeq.get() as number,
    setCertSerial: (id: number, serial: string) => void s.setCertSerial.run(serial, id),
    setPolicy: (id: number, policy: string | null, now: number) => void s.setPolicy.run(policy, now, id),
  };
}

export type PeerRepository = ReturnType<typeof peerRepository>;
