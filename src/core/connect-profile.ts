/**
 * The connect profile: one file that holds everything `wg-ollama connect`
 * needs for one peer — the guard's URL, the CA that signed the guard, and the
 * peer's client certificate and key. It is a secret like the WireGuard config
 * (mode 0600 on disk) and is written by `add-peer --out` and the admin UI.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import { WgoError } from '../errors.js';

/** Bumped only when a connector could no longer read older profiles. */
export const CONNECT_PROFILE_FORMAT = 1;

const pem = (label: string) =>
  z.string().max(64 * 1024).refine((t) => t.includes(`-----BEGIN ${label}`), `must be a PEM ${label.toLowerCase()}`);

const schema = z.strictObject({
  /** Format marker: tells this file from any other JSON. */
  wgOllamaConnect: z.literal(CONNECT_PROFILE_FORMAT),
  /** The peer's name at the gateway (for messages only; the certificate is the identity). */
  peer: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,31}$/, 'must be a peer name'),
  /** Where the guard listens inside the tunnel, https://IP:PORT. */
  guardUrl: z.string().url().refine((u) => /^https:\/\/[^/?#]+\/?$/.test(u), 'must be https://HOST:PORT'),
  /** The wg-ollama CA (PEM): the guard's server certificate must chain to it. */
  ca: pem('CERTIFICATE'),
  /** The peer's client certificate (PEM). */
  certificate: pem('CERTIFICATE'),
  /** Its private key (PEM). */
  key: z.string().max(64 * 1024).refine((t) => /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(t), 'must be a PEM private key'),
});

export type ConnectProfile = z.output<typeof schema>;

/** The profile's text, as written next to the .p12: pretty JSON, newline at the end. */
export function renderConnectProfile(p: Omit<ConnectProfile, 'wgOllamaConnect'>): string {
  const body: ConnectProfile = { wgOllamaConnect: CONNECT_PROFILE_FORMAT, peer: p.peer, guardUrl: p.guardUrl.replace(/\/$/, ''), ca: p.ca, certificate: p.certificate, key: p.key };
  return JSON.stringify(body, null, 2) + '\n';
}

export interface ParsedProfile extends ConnectProfile {
  /** Serial (lower-case hex without leading zeros, as `show-peer` prints it) and end of the client certificate. */
  serial: string;
  notAfter: number;
}

/**
 * Validates a profile's JSON: the shape, then that the certificates parse,
 * the client certificate was issued by the CA, and the key belongs to it.
 * Throws a WgoError (bad input) whose message names what is wrong.
 */
export function parseConnectProfile(raw: unknown): ParsedProfile {
  const r = schema.safeParse(raw);
  if (!r.success) {
    const what = r.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');
    throw new WgoError('BAD_INPUT', `not a wg-ollama connect profile: ${what}`);
  }
  const p = r.data;
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(p.ca);
  } catch (e) {
    throw new WgoError('BAD_INPUT', `the profile's CA certificate does not parse: ${(e as Error).message}`, { cause: e });
  }
  try {
    cert = new X509Certificate(p.certificate);
  } catch (e) {
    throw new WgoError('BAD_INPUT', `the profile's client certificate does not parse: ${(e as Error).message}`, { cause: e });
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new WgoError('BAD_INPUT', "the profile's client certificate was not issued by its CA");
  let matches = false;
  let cause: unknown;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(p.key));
  } catch (e) {
    cause = e;
  }
  if (!matches) throw new WgoError('BAD_INPUT', "the profile's private key does not belong to its client certificate", { cause });
  return { ...p, guardUrl: p.guardUrl.replace(/\/$/, ''), serial: cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''), notAfter: Date.parse(cert.validTo) };
}
