/**
 * The connector's decisions as pure functions: where it may listen, which
 * Host headers it answers (DNS rebinding), what a failure to reach the guard
 * means for the person at the laptop, and when the certificate needs a word.
 */
import { isIP } from 'node:net';
import { parseListen } from './limits.js';

/** Ollama's own default: every Ollama client finds the connector with no configuration. */
export const DEFAULT_CONNECT_LISTEN = '127.0.0.1:11434';
/** A certificate this close to its end gets a warning at start and in --check. */
export const EXPIRY_WARNING_DAYS = 14;

export interface ConnectListen {
  host: string;
  port: number;
  loopback: boolean;
  /** As typed, for messages: 127.0.0.1:11434, [::1]:11434. */
  text: string;
}

export function isLoopbackAddress(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  const h = host.toLowerCase();
  return h === '::1' || h.startsWith('::ffff:127.');
}

/** `IP:PORT` or `[IPv6]:PORT`, or `localhost:PORT` (= 127.0.0.1); null when it is neither. */
export function parseConnectListen(text: string): ConnectListen | null {
  const t = text.trim();
  const local = /^localhost:(\d{1,5})$/i.exec(t);
  const a = local ? parseListen(`127.0.0.1:${local[1]}`) : parseListen(t);
  if (!a || isIP(a.host) === 0) return null;
  return { host: a.host, port: a.port, loopback: isLoopbackAddress(a.host), text: a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}` };
}

/**
 * Whether a request's Host header names this connector. On loopback only
 * loopback names are answered, so a web page that rebinds its own DNS name to
 * 127.0.0.1 cannot use the peer's identity (Ollama's own allowed-hosts rule).
 */
export function hostAllowed(host: string | undefined, listen: ConnectListen, allowRemote: boolean): boolean {
  if (allowRemote) return true;
  if (host === undefined) return false;
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(host.trim().toLowerCase());
  if (!m) return false;
  const name = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  if (m[2] !== undefined && Number(m[2]) !== listen.port) return false;
  return name === 'localhost' || isLoopbackAddress(name) || name === listen.host.toLowerCase();
}

/** The Ollama-shaped error text for a request the connector could not get to the guard. */
export function describeGuardFailure(err: { code?: string; message?: string } | undefined, guardUrl: string): string {
  const code = err?.code ?? '';
  const why = code || err?.message || 'unknown error';
  const tunnel = 'is the WireGuard tunnel up? (the WireGuard app, or `wg show`: no recent handshake means it is down, or your peer was disabled or revoked)';
  switch (code) {
    case 'ECONNREFUSED':
      return `the wg-ollama guard at ${guardUrl} refused the connection (${why}): the tunnel is up but the guard is not running; tell your admin`;
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
    case 'EADDRNOTAVAIL':
      return `cannot reach the wg-ollama guard at ${guardUrl} (${why}): ${tunnel}`;
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_SIGNATURE_FAILURE':
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
    case 'CERT_HAS_EXPIRED':
      return `the server at ${guardUrl} is not the wg-ollama guard this profile trusts (${why}); ask your admin for a new connect profile`;
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return `the wg-ollama guard at ${guardUrl} closed the connection (${why}): ${tunnel}`;
    case 'UND_ERR_HEADERS_TIMEOUT':
      return `the wg-ollama guard at ${guardUrl} did not answer in time (${why}): ${tunnel}`;
    default:
      return `cannot use the wg-ollama guard at ${guardUrl} (${why}): ${tunnel}`;
  }
}

/** What to tell the person about the certificate's end; null when nothing needs saying. */
export function certificateNotice(notAfterMs: number, now: number): { expired: boolean; text: string } | null {
  const days = (notAfterMs - now) / 86_400_000;
  const when = new Date(notAfterMs).toISOString();
  if (days <= 0) return { expired: true, text: `the client certificate expired on ${when}: the guard will refuse it; ask your admin to rotate your peer for a new profile` };
  if (days <= EXPIRY_WARNING_DAYS) {
    const left = days < 1 ? 'in less than a day' : `in ${Math.floor(days)} day${Math.floor(days) === 1 ? '' : 's'}`;
    return { expired: false, text: `the client certificate expires ${left} (${when}); ask your admin to rotate your peer for a new profile` };
  }
  return null;
}
