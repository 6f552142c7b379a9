import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_CONNECT_LISTEN, certificateNotice, parseConnectListen, type ConnectListen } from '../core/connect.js';
import { WgoError, badInput } from '../errors.js';
import type { ConnectOptions } from './options.js';
import { checkConnect, listenError, renderCheck } from './check.js';
import { loadConnectProfile } from './profile.js';
import { createConnector } from './proxy.js';

export interface ConnectIo {
  out(text: string): void;
  err(text: string): void;
}

/**
 * `connect PROFILE`: validates everything first, then listens until SIGINT or
 * SIGTERM (resolves 0), or with --check reports and resolves 0 or 1. Bad
 * input throws a WgoError (exit 2).
 */
export async function runConnect(file: string, o: ConnectOptions, io: ConnectIo, signal?: AbortSignal): Promise<number> {
  const [major] = process.versions.node.split('.').map(Number);
  if ((major ?? 0) < 20) throw new WgoError('MISSING_PROGRAM', `Node.js 20 or newer is needed (this is ${process.version})`);
  const listen = parseConnectListen(o.listen ?? DEFAULT_CONNECT_LISTEN);
  if (!listen) throw badInput(`--listen ${o.listen}: must be IP:PORT, [IPv6]:PORT or localhost:PORT`);
  if (!listen.loopback && !o.allowRemote) {
    throw badInput(`--listen ${listen.text} is reachable from other computers, and every request there is made as you; add --allow-remote if that is what you want`);
  }
  const profile = loadConnectProfile(file);

  if (o.check) {
    const report = await checkConnect(profile, listen, Date.now());
    io.out(o.json ? JSON.stringify(report, null, 2) + '\n' : renderCheck(report));
    return report.ok ? 0 : 1;
  }

  const notice = certificateNotice(profile.notAfter, Date.now());
  if (notice) io.err(`wg-ollama-connect: warning: ${notice.text}\n`);
  if (!listen.loopback) {
    io.err(`wg-ollama-connect: warning: listening on ${listen.text}: anyone who can reach it uses the LLM as peer "${profile.peer}" (its policy, budget and request log)\n`);
  }
  const connector = createConnector({
    guardUrl: profile.guardUrl,
    tls: { ca: profile.ca, cert: profile.certificate, key: profile.key },
    listen,
    allowRemote: !!o.allowRemote,
    log: { warn: (t) => io.err(`wg-ollama-connect: ${t}\n`) },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      connector.server.once('error', (e: NodeJS.ErrnoException) => reject(new WgoError('BAD_INPUT', listenError(e, listen), { cause: e })));
      connector.server.listen({ host: listen.host, port: listen.port, exclusive: true }, resolve);
    });
  } catch (e) {
    await connector.close();
    throw e;
  }
  io.err(
    `wg-ollama-connect: peer ${profile.peer} → ${profile.guardUrl}\n` +
      `wg-ollama-connect: Ollama clients on this computer can now use http://${bound(connector.server, listen)} (Ctrl-C stops)\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    signal?.addEventListener('abort', stop, { once: true });
  });
  await connector.close();
  return 0;
}

/** The address actually listened on (a --listen port of 0 takes any free one). */
function bound(server: Server, listen: ConnectListen): string {
  const port = (server.address() as AddressInfo).port;
  return listen.text.replace(/:\d+$/, `:${port}`);
}
