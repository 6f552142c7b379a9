import type { EventLog } from '../core/log-events.js';
import { createServer, type Server } from 'node:https';
import { readFileSync } from 'node:fs';
import { parseListen } from '../core/limits.js';
import { isIpv4 } from '../core/ipv4.js';
import { WgoError } from '../errors.js';
import type { GatewayContext } from '../gateway/context.js';
import { ensureServerCert } from '../gateway/server-cert.js';
import { listen } from '../system/metrics-http.js';
import { closeableServer } from '../system/sockets.js';
import { accountService } from './accounts.js';
import { enrollmentService } from './enrollments.js';
import { queryService, type DaemonSource, type KernelReaders } from '../gateway/queries.js';
import { createSecretBox, loadAdminKey } from './secret-box.js';
import { createAdminApp } from './web.js';

/** Host names the UI answers to: localhost, every listen address (IPv6 in brackets, as in a Host header), and config hosts. */
export function adminHosts(listenAddrs: readonly string[], extra: readonly string[]): string[] {
  const out = new Set(['localhost', ...extra.map((h) => h.toLowerCase())]);
  for (const l of listenAddrs) {
    const a = parseListen(l);
    if (a) out.add(a.host.includes(':') ? `[${a.host.toLowerCase()}]` : a.host);
  }
  return [...out];
}

/**
 * Starts the admin UI on every configured address (HTTPS). The certificate is
 * the admin's own (config admin.tls) or one issued by the wg-ollama CA for the
 * listen addresses and host names. Returns null when the UI is turned off.
 */
export async function startAdminUi(ctx: GatewayContext, o: { onChange(): void; kernel: KernelReaders; daemon: DaemonSource; clock?: () => number; log: EventLog }): Promise<{ close(): Promise<void>; ports(): number[] } | null> {
  const admin = ctx.config.admin;
  if (!admin) return null;
  const hosts = adminHosts(admin.listen, admin.hosts);
  let tls: { cert: string; key: string };
  if (admin.tls) {
    try {
      tls = { cert: readFileSync(admin.tls.cert, 'utf8'), key: readFileSync(admin.tls.key, 'utf8') };
    } catch (e) {
      throw new WgoError('CONFIG_INVALID', `cannot read the admin UI certificate (config admin.tls): ${(e as Error).message}`);
    }
  } else {
    const ips = admin.listen.map((l) => parseListen(l)!.host).filter((h) => isIpv4(h) && h !== '0.0.0.0');
    tls = ensureServerCert(ctx, 'admin', 'gateway-server', 'wg-ollama admin', ips, hosts.filter((h) => !isIpv4(h) && !h.startsWith('[')));
  }
  let box: ReturnType<typeof createSecretBox> | null = null;
  const accounts = accountService({ db: ctx.db, clock: o.clock, box: () => (box ??= createSecretBox(loadAdminKey(ctx.config.paths.adminKey, true))) });
  const enrollments = enrollmentService({ db: ctx.db, peers: ctx.peers, ttlMs: admin.enrollMinutes * 60_000, clock: o.clock });
  const queries = queryService({ db: ctx.db, config: ctx.config });
  const app = createAdminApp({ ctx, accounts, enrollments, queries, kernel: o.kernel, daemon: o.daemon, hosts, onChange: o.onChange, log: o.log });
  const servers: Server[] = [];
  const closers: (() => Promise<void>)[] = [];
  try {
    for (const l of admin.listen) {
      const a = parseListen(l)!;
      const server = createServer({ ...tls, minVersion: 'TLSv1.2' }, app);
      closers.push(closeableServer(server).close);
      server.headersTimeout = 10_000;
      server.requestTimeout = 30_000;
      await listen(server, a.host, a.port, 'admin UI (config admin.listen)');
      servers.push(server);
    }
  } catch (e) {
    await Promise.all(closers.map((c) => c()));
    throw e;
  }
  const sweep = setInterval(() => accounts.expireSessions(), 60_000);
  sweep.unref();
  o.log.info({ event: 'admin-ui.start', listen: admin.listen, hosts }, 'admin UI serving');
  return {
    /** The ports actually bound, in the order of admin.listen (port 0 picks one). */
    ports: () => servers.map((s) => (s.address() as import('node:net').AddressInfo).port),
    close: async () => {
      clearInterval(sweep);
      await Promise.all(closers.map((c) => c()));
    },
  };
}
