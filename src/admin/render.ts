import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import type { Request, Response } from 'express';
import QRCode from 'qrcode';
import type { IssuedPeer } from '../gateway/peer-service.js';
import { CONNECTOR_FILE, connectorBundle } from '../connect/bundle.js';
import { renderConnectProfile } from '../core/connect-profile.js';
import { escapeControl } from '../core/format.js';
import { buildPkcs12, generatePassphrase } from '../pki/pkcs12.js';

/** Where the admin UI serves the connector (not a secret: the same file for everyone). */
export const CONNECTOR_DOWNLOAD = `/downloads/${CONNECTOR_FILE}`;

/** web/ at the top of the checkout: two levels up from src/admin and from dist/admin alike. */
export const WEB_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');

/** Templates escape every `<%= %>` interpolation; `<%~ %>` (raw) is only used for markup we generate. */
const eta = new Eta({ views: join(WEB_DIR, 'views'), cache: true, autoEscape: true });

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (c) => ESC[c]!);

export interface PageData {
  title: string;
  nav?: string;
  flash?: string;
  [k: string]: unknown;
}

/** Renders a page with the layout; the signed-in admin and the CSRF token come from the request. */
export function render(req: Request, res: Response, view: string, data: PageData, status = 200): void {
  const me = req.session?.admin ?? null;
  // ctl: control characters shown as text (`\x1b`, `\u202e`); log pages pass every cell through it, as the CLI does.
  const html = eta.render(view, { ...data, me, csrf: req.session?.csrf ?? '', esc, ctl: escapeControl });
  res.status(status).type('html').send(html);
}

const dataUri = (type: string, body: Buffer | string): string => `data:${type};base64,${Buffer.from(body).toString('base64')}`;

/**
 * The page that shows a peer's keys once: the QR code (SVG) of the WireGuard
 * config, and the config, certificate, key, CA, a .p12 and the connect
 * profile as downloads (data: URIs, so nothing is kept on the server to be
 * fetched again), with the connector's (public) download link.
 */
export async function issuedPage(issued: IssuedPeer, guardUrl: string, heading: string, afterwards: string): Promise<PageData> {
  const name = issued.peer.name;
  const passphrase = generatePassphrase();
  const p12 = buildPkcs12({ certPem: issued.certificate.certPem, keyPem: issued.certificate.keyPem, caCertPem: issued.caCertificate, friendlyName: `wg-ollama ${name}`, passphrase });
  // Byte mode, so the decoded QR is the config file byte for byte.
  const qrSvg = await QRCode.toString([{ data: Buffer.from(issued.config, 'utf8'), mode: 'byte' }], { type: 'svg', errorCorrectionLevel: 'M', margin: 4 });
  return {
    title: heading,
    heading,
    afterwards,
    name,
    config: issued.config,
    qrSvg,
    confHref: dataUri('text/plain;charset=utf-8', issued.config),
    p12Href: dataUri('application/x-pkcs12', p12),
    crtHref: dataUri('application/x-pem-file', issued.certificate.certPem),
    keyHref: dataUri('application/x-pem-file', issued.certificate.keyPem),
    caHref: dataUri('application/x-pem-file', issued.caCertificate),
    connectHref: dataUri('application/json', renderConnectProfile({ peer: name, guardUrl, ca: issued.caCertificate, certificate: issued.certificate.certPem, key: issued.certificate.keyPem })),
    connectorHref: connectorBundle() ? CONNECTOR_DOWNLOAD : null,
    connectCommand: `node ${CONNECTOR_FILE} ${name}.connect.json`,
    passphrase,
    guardUrl,
    certificateExpiresAt: issued.certificate.notAfter,
  };
}
