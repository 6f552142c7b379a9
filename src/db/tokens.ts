import type { Db } from './open.js';

/** A peer's API token as stored: its SHA-256 only, never the token. */
export interface TokenRow {
  peerId: number;
  tokenSha256: string;
  /** The certificate serial the token is bound to; once the peer's current serial differs, the token is dead. */
  certSerial: string;
  createdAt: number;
  createdBy: string;
}

const COLUMNS = `peer_id AS peerId, token_sha256 AS tokenSha256, cert_serial AS certSerial, created_at AS createdAt, created_by AS createdBy`;

/** Peer-bound API tokens: at most one per peer (issuing again replaces it). */
export function tokenRepository(db: Db) {
  const s = {
    put: db.prepare(`INSERT INTO peer_tokens (peer_id, token_sha256, cert_serial, created_at, created_by)
      VALUES (@peerId, @tokenSha256, @certSerial, @createdAt, @createdBy)
      ON CONFLICT (peer_id) DO UPDATE SET token_sha256 = excluded.token_sha256, cert_serial = excluded.cert_serial,
        created_at = excluded.created_at, created_by = excluded.created_by`),
    byPeer: db.prepare(`SELECT ${COLUMNS} FROM peer_tokens WHERE peer_id = ?`),
    all: db.prepare(`SELECT ${COLUMNS} FROM peer_tokens`),
    remove: db.prepare(`DELETE FROM peer_tokens WHERE peer_id = ?`),
  };
  return {
    /** Stores (or replaces) the peer's token hash. */
    put: (t: TokenRow): void => void s.put.run(t),
    byPeer: (peerId: number) => s.byPeer.get(peerId) as TokenRow | undefined,
    /** Every stored token by peer id (the peer set joins them to active peers). */
    byPeerId: (): Map<number, TokenRow> => new Map((s.all.all() as TokenRow[]).map((t) => [t.peerId, t])),
    /** Removes the peer's token; true when there was one. */
    remove: (peerId: number): boolean => s.remove.run(peerId).changes > 0,
  };
}

export type TokenRepository = ReturnType<typeof tokenRepository>;
