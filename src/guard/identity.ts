import type { TLSSocket } from 'node:tls';
import type { Refusal } from '../core/policy.js';
import { normaliseSerial } from '../pki/ca.js';
import type { GuardPeer } from '../core/wire.js';

/** Who is on the other end of a TLS connection, decided once at the handshake and re-checked per request. */
export interface ConnectionIdentity {
  source: string;
  /** Normalised serial of the client certificate, when one verified against our CA. */
  serial: string | null;
  /** IP addresses in the certificate's subjectAltName. */
  sanIps: string[];
  /** Why the connection may not make requests, or null when its certificate is good. */
  failure: Refusal | null;
}

/** `::ffff:10.66.0.2` → `10.66.0.2`. */
export function plainAddress(addr: string | undefined): string {
  if (!addr) return '?';
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

const refusal = (status: 401 | 403, error: string, reason: string): Refusal => ({ status, error, reason });

/**
 * The certificate checks OpenSSL already made (chain to our CA, validity
 * period, purpose) as a result: a connection without a verified certificate
 * gets a reason here and is answered 401 on every request.
 */
export function identifyConnection(socket: TLSSocket): ConnectionIdentity {
  const source = plainAddress(socket.remoteAddress);
  const cert = socket.getPeerCertificate();
  // A TLS 1.3 session resumed without a client certificate counts as "authorized" in Node (no
  // certificate, nothing failed to verify): no certificate is no certificate, whatever the flag says.
  if (!cert || Object.keys(cert).length === 0 || typeof cert.serialNumber !== 'string') {
    return { source, serial: null, sanIps: [], failure: refusal(401, 'client certificate required', 'auth_no_certificate') };
  }
  if (!socket.authorized) {
    const code = String(socket.authorizationError ?? '');
    if (code === 'CERT_HAS_EXPIRED') return { source, serial: null, sanIps: [], failure: refusal(401, 'client certificate has expired', 'auth_expired') };
    if (code === 'CERT_NOT_YET_VALID') return { source, serial: null, sanIps: [], failure: refusal(401, 'client certificate is not valid yet', 'auth_not_yet_valid') };
    return { source, serial: null, sanIps: [], failure: refusal(401, 'client certificate is not from this wg-ollama CA', 'auth_untrusted') };
  }
  const sanIps = (cert.subjectaltname ?? '').split(', ').filter((e) => e.startsWith('IP Address:')).map((e) => plainAddress(e.slice(11)));
  return { source, serial: normaliseSerial(cert.serialNumber), sanIps, failure: null };
}

/**
 * Per request: the verified certificate must be the current one of an active
 * peer, not past its expiry, and presented from that peer's tunnel address.
 */
export function authorize(id: ConnectionIdentity, peer: GuardPeer | undefined, now: number): { ok: true; peer: GuardPeer } | { ok: false; refusal: Refusal } {
  if (id.failure) return { ok: false, refusal: id.failure };
  if (!peer) return { ok: false, refusal: refusal(401, 'client certificate is revoked or belongs to no active peer', 'auth_revoked') };
  if (peer.expiresAt !== null && peer.expiresAt <= now) return { ok: false, refusal: refusal(401, 'peer has expired', 'auth_peer_expired') };
  if (peer.address !== id.source || !id.sanIps.includes(id.source)) {
    return { ok: false, refusal: refusal(403, `client certificate belongs to ${peer.address}, not to ${id.source}`, 'auth_wrong_source') };
  }
  return { ok: true, peer };
}
