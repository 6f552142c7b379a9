import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Config } from '../config.js';
import { parseDuration } from '../core/duration.js';
import { openGateway } from '../gateway/context.js';
import type { Actor, IssuedPeer, PeerView } from '../gateway/peer-service.js';
import { guardUrl, queryService } from '../gateway/queries.js';
import { applyNow, type Removal } from './apply.js';
import { validatePeerName } from '../core/names.js';
import { WgoError } from '../errors.js';
import { buildPkcs12, generatePassphrase } from '../pki/ca.js';
import { renderConnectProfile } from '../core/connect-profile.js';
import { CONNECTOR_FILE } from '../connect/bundle.js';
import { outFiles, preflightOut, terminalQr, writeOut } from './deliver.js';
import { ago, bytes, emit, escapeControl, table, type Io } from './output.js';

export interface IssueOptions {
  publicKey?: string;
  expires?: string;
  qr?: boolean;
  out?: string;
  json?: boolean;
}

function withGateway<T>(config: Config, fn: (ctx: ReturnType<typeof openGateway>) => Promise<T> | T): Promise<T> {
  const ctx = openGateway(config);
  return Promise.resolve()
    .then(() => fn(ctx))
    .finally(() => ctx.close());
}

/** What a person runs in the --out directory, from the files it holds. */
export const connectCommand = (name: string, bundled: boolean): string =>
  `${bundled ? `node ${CONNECTOR_FILE}` : 'wg-ollama connect'} ${basename(outFiles('.', name).connect)}`;

/** Prints what add-peer / rotate-peer issued: once, and never again. */
async function deliver(config: Config, io: Io, issued: IssuedPeer, o: IssueOptions, outDir: string | null, removal?: Removal): Promise<void> {
  let files: string[] = [];
  const name = issued.peer.name;
  const passphrase = outDir ? generatePassphrase() : null;
  try {
    const tls = outDir
      ? {
          certPem: issued.certificate.certPem,
          keyPem: issued.certificate.keyPem,
          caPem: issued.caCertificate,
          p12: buildPkcs12({ certPem: issued.certificate.certPem, keyPem: issued.certificate.keyPem, caCertPem: issued.caCertificate, friendlyName: `wg-ollama ${name}`, passphrase: passphrase! }),
          connectProfile: renderConnectProfile({ peer: name, guardUrl: guardUrl(config), ca: issued.caCertificate, certificate: issued.certificate.certPem, key: issued.certificate.keyPem }),
        }
      : undefined;
    files = outDir ? await writeOut(outDir, name, issued.config, tls) : [];
  } catch (e) {
    const why = `could not write the files to ${outDir}: ${(e as Error).message}`;
    if (!removal) throw new WgoError('EXEC_FAILED', `${why}; the new peer was revoked again`, { cause: e });
    // A rotation is committed and the old keys are dead: print the new ones rather than lose them.
    io.out(issued.config + '\n' + issued.certificate.certPem + issued.certificate.keyPem);
    throw new WgoError('EXEC_FAILED', `${why}; the config and certificate above are the only copy of the new keys`, { cause: e });
  }
  const { live } = await applyNow(config, io, removal);
  const data = {
    name,
    address: issued.peer.address,
    publicKey: issued.peer.publicKey,
    status: issued.peer.status,
    expiresAt: issued.peer.expiresAt,
    config: issued.config,
    certificate: issued.certificate.certPem,
    certificateKey: issued.certificate.keyPem,
    certificateSerial: issued.certificate.serial,
    certificateExpiresAt: issued.certificate.notAfter,
    caCertificate: issued.caCertificate,
    guardUrl: guardUrl(config),
    p12Passphrase: passphrase,
    /** With --out: the one command that makes the GPU a local Ollama on the person's laptop (run in DIR). */
    connectCommand: outDir ? connectCommand(name, existsSync(join(outDir, CONNECTOR_FILE))) : null,
    files,
    live,
  };
  if (o.json) return emit(io, true, data, () => '');
  let text = issued.config;
  if (o.qr) text += '\n' + (await terminalQr(issued.config));
  if (files.length) {
    text += `\nwrote ${files.join(', ')}\n`;
    text += `PKCS#12 passphrase for ${name}.p12 (shown once): ${passphrase}\n`;
    text += `\nFor ${name}, once the WireGuard tunnel is up:\n` +
      `  laptop: ${data.connectCommand}   (Node.js >= 20; then any Ollama tool uses http://127.0.0.1:11434)\n` +
      `  phone or browser: import ${name}.p12 with the passphrase above, then open ${data.guardUrl}/\n`;
  } else {
    // Without --out the certificate and its key exist only here.
    text += `\n# client certificate for ${data.guardUrl} (curl --cert/--key; valid until ${data.certificateExpiresAt})\n${data.certificate}${data.certificateKey}# CA certificate (curl --cacert)\n${data.caCertificate}`;
  }
  io.out(text);
  io.err(`peer ${name} has address ${data.address}; its LLM endpoint is ${data.guardUrl}; keys and certificate are shown only once\n`);
}

export async function addPeer(config: Config, name: string, o: IssueOptions, io: Io, who: Actor): Promise<void> {
  const expiresInMs = o.expires === undefined ? undefined : parseDuration(o.expires, '--expires');
  validatePeerName(name);
  await withGateway(config, async (ctx) => {
    const outDir = o.out ? preflightOut(o.out, name) : null;
    const issued = ctx.peers.add({ name, publicKey: o.publicKey, expiresInMs }, who);
    try {
      await deliver(config, io, issued, o, outDir);
    } catch (e) {
      // The person never got the config: take the peer back rather than leave it half-delivered.
      ctx.peers.revoke(issued.peer.name, { ...who, source: `${who.source} (undo: delivery failed)` });
      await applyNow(config, io, removalOf(issued.peer)).catch(() => undefined);
      throw e;
    }
  });
}

export async function rotatePeer(config: Config, name: string, o: IssueOptions, io: Io, who: Actor): Promise<void> {
  validatePeerName(name);
  await withGateway(config, async (ctx) => {
    const outDir = o.out ? preflightOut(o.out, name) : null;
    const before = ctx.peers.show(name);
    const issued = ctx.peers.rotate(name, { publicKey: o.publicKey }, who);
    await deliver(config, io, issued, o, outDir, { publicKeys: [before.publicKey], setAddresses: [], cutAddresses: [before.address] });
  });
}

const removalOf = (p: PeerView): Removal => ({ publicKeys: [p.publicKey], setAddresses: [p.address], cutAddresses: [p.address] });

type Change = 'disable' | 'enable' | 'revoke';

export async function changePeer(config: Config, change: Change, name: string, o: { json?: boolean; expires?: string }, io: Io, who: Actor): Promise<void> {
  const expiresInMs = o.expires === undefined ? undefined : parseDuration(o.expires, '--expires');
  await withGateway(config, async (ctx) => {
    const r =
      change === 'disable' ? ctx.peers.disable(name, who)
      : change === 'enable' ? ctx.peers.enable(name, { expiresInMs }, who)
      : ctx.peers.revoke(name, who);
    const removal = change === 'enable' ? undefined : removalOf(r.peer);
    if ('warning' in r && r.warning) io.err(`warning: ${r.warning}\n`);
    const { live } = r.changed ? await applyNow(config, io, removal) : { live: true };
    // A full disk: the access is gone (live), the record is kept aside until there is space (gateway/denials.ts).
    const saved = !('saved' in r && r.saved === false);
    if (!saved) {
      io.err(`warning: the disk is full: access was removed from the tunnel now, but the ${change} could not be saved to the database; ` +
        `it is kept in ${ctx.denials.path} and saved when space returns (serve tries every second)\n`);
    }
    emit(io, o.json, { ...r.peer, changed: r.changed, live, saved }, (d) =>
      `${d.name}: ${d.status}${d.changed ? '' : ' (unchanged)'}\n`);
  });
}

export async function listPeers(config: Config, o: { json?: boolean; all?: boolean }, io: Io): Promise<void> {
  await withGateway(config, (ctx) => {
    // list-peers keeps its shape: today's usage is the web list's column.
    const rows = queryService(ctx).peers({ includeRevoked: o.all }).map(({ requestsToday: _r, tokensToday: _t, ...p }) => p);
    emit(io, o.json, rows, (list) =>
      list.length === 0
        ? 'no peers\n'
        : table([
            ['NAME', 'ADDRESS', 'STATUS', 'EXPIRES', 'HANDSHAKE', 'ENDPOINT', 'RX', 'TX'],
            ...list.map((p) => [
              p.name, p.address, p.status, p.expiresAt ?? '-',
              p.latestHandshake ? ago(Date.parse(p.latestHandshake)) : '-', p.endpoint ?? '-', bytes(p.rxBytes), bytes(p.txBytes),
            ]),
          ]));
  });
}

export async function showPeer(config: Config, name: string, o: { json?: boolean }, io: Io): Promise<void> {
  await withGateway(config, (ctx) => {
    const { peer, apiToken } = queryService(ctx).peer(name);
    // active: guards accept it; stale: stored but dead (rotated, policy off, peer not active); none.
    emit(io, o.json, { ...peer, apiToken: apiToken.state }, (d) =>
      Object.entries(d)
        .map(([k, v]) => `${k.padEnd(16)} ${escapeControl(String(v ?? '-'))}`)
        .join('\n') + '\n');
  });
}
