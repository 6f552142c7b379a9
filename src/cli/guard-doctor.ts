import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { intToIp, parseCidr } from '../core/ipv4.js';
import { parseListen } from '../core/limits.js';
import { parseWire, peerSetSchema, type PeerSet } from '../core/wire.js';
import type { GuardConfig } from '../guard/config.js';
import { execRunner, type Runner } from '../system/exec.js';
import { auditChecks, type Check } from './guard-doctor-audit.js';
import { emit, type Io } from './output.js';

/**
 * `wg-ollama doctor --guard`: checks a GPU host. Certificates readable, from
 * the CA and not near expiry; replies to the tunnel subnet routed via the
 * gateway (no NAT: the guard must see peers' tunnel addresses); Ollama
 * answering on loopback and on no other address; the gateway's sync API
 * reachable with the guard's certificate; the spool writable and the running
 * guard able to record requests (guard-doctor-audit.ts). A pool's router has no
 * Ollama: instead, each of its GPU hosts must answer it over mTLS.
 */
export async function runGuardDoctor(config: GuardConfig, o: { json?: boolean }, io: Io, run: Runner = execRunner): Promise<number> {
  const results: Check[] = [];
  const add = (check: string, status: Check['status'], detail: string): void => void results.push({ check, status, detail });
  const read = (path: string): string | null => {
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      add(`file ${path}`, 'fail', (e as Error).message);
      return null;
    }
  };

  const ca = read(config.tls.ca);
  for (const [what, certFile, keyFile] of [['server certificate', config.tls.cert, config.tls.key], ['sync certificate', config.tls.syncCert, config.tls.syncKey]] as const) {
    const cert = read(certFile);
    const key = read(keyFile);
    if (!cert || !key || !ca) continue;
    try {
      const x = new X509Certificate(cert);
      const days = Math.floor((Date.parse(x.validTo) - Date.now()) / 86_400_000);
      if (!x.verify(new X509Certificate(ca).publicKey)) add(what, 'fail', `${certFile} is not signed by ${config.tls.ca}`);
      else if (!x.checkPrivateKey(createPrivateKey(key))) add(what, 'fail', `${keyFile} does not belong to ${certFile}`);
      else add(what, days < 0 ? 'fail' : days < 30 ? 'warn' : 'ok', `${x.subject.replace(/\n/g, ', ')}; expires in ${days} days`);
    } catch (e) {
      add(what, 'fail', (e as Error).message);
    }
  }

  const gatewayHost = new URL(config.gatewayUrl).hostname.replace(/^\[|\]$/g, '');
  if (config.tunnelSubnet) {
    try {
      const net = parseCidr(config.tunnelSubnet);
      const probe = intToIp(net.base + 2);
      const r = await run('ip', ['-j', 'route', 'get', probe]);
      const route = (JSON.parse(r.stdout) as { gateway?: string; dev?: string }[])[0] ?? {};
      if (route.gateway === gatewayHost) add('route to the tunnel', 'ok', `${config.tunnelSubnet} via ${route.gateway} dev ${route.dev}`);
      else add('route to the tunnel', 'fail', `${probe} goes ${route.gateway ? `via ${route.gateway}` : 'direct'} dev ${route.dev ?? '?'}; add: ip route add ${config.tunnelSubnet} via ${gatewayHost}`);
    } catch (e) {
      add('route to the tunnel', 'fail', (e as Error).message);
    }
  } else add('route to the tunnel', 'warn', 'guard.json has no tunnelSubnet (written by add-guard); cannot check');

  // The pool's router has no Ollama of its own: its GPU hosts are checked below, from the peer set.
  if (config.pool?.role !== 'router') await ollamaChecks(config, add, run);

  let set: PeerSet | null = null;
  if (ca) {
    const agent = new Agent({ connect: { ca, cert: read(config.tls.syncCert) ?? '', key: read(config.tls.syncKey) ?? '' } });
    try {
      const r = await request(`${config.gatewayUrl.replace(/\/+$/, '')}/v1/peers?after=&wait=0`, { dispatcher: agent, headersTimeout: 5000, bodyTimeout: 5000 });
      const text = await r.body.text();
      if (r.statusCode === 200) set = parseWire(peerSetSchema, text, 'peer set from the gateway');
      add('gateway sync', r.statusCode === 200 ? 'ok' : 'fail', r.statusCode === 200 ? `${config.gatewayUrl}: ${set!.peers.length} active peers` : `${config.gatewayUrl} answered ${r.statusCode} ${text.slice(0, 120)}`);
    } catch (e) {
      add('gateway sync', 'fail', `${config.gatewayUrl}: ${(e as Error).message}`);
    } finally {
      await agent.close();
    }
    if (set && config.pool) await poolChecks(config, set, { ca, cert: read(config.tls.syncCert) ?? '', key: read(config.tls.syncKey) ?? '' }, add);
  }
  results.push(...(await auditChecks(config)));
  emit(io, o.json, results, (rs) => rs.map((r) => `${r.status.toUpperCase().padEnd(4)}  ${r.check.padEnd(22)} ${r.detail}`).join('\n') + '\n');
  return results.some((r) => r.status === 'fail') ? 1 : 0;
}

type Add = (check: string, status: Check['status'], detail: string) => void;

/** Ollama answering on the guard's upstream, and its port open on no other address than loopback and the guard's. */
async function ollamaChecks(config: GuardConfig, add: Add, run: Runner): Promise<void> {
  const upstream = new URL(config.upstream);
  try {
    const r = await request(new URL('/api/version', upstream), { headersTimeout: 3000, bodyTimeout: 3000 });
    const text = await r.body.text();
    add('ollama', r.statusCode === 200 ? 'ok' : 'fail', `${config.upstream} answered ${r.statusCode} ${text.slice(0, 80)}`);
  } catch (e) {
    add('ollama', 'fail', `${config.upstream}: ${(e as Error).message}`);
  }
  try {
    const port = upstream.port || '80';
    const listen = parseListen(config.listen)!;
    const r = await run('ss', ['-Hltn', `sport = :${port}`]);
    const exposed = r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[3]).filter((a): a is string => !!a)
      .filter((a) => !/^(127\.|\[::1\]|::1)/.test(a) && a !== `${listen.host}:${listen.port}` && a !== `[${listen.host}]:${listen.port}`);
    add('ollama exposure', exposed.length ? 'fail' : 'ok', exposed.length ? `port ${port} is also open on ${exposed.join(', ')}: bind Ollama to 127.0.0.1 (systemd/ollama-loopback.conf)` : `port ${port} only on loopback and the guard address`);
  } catch (e) {
    add('ollama exposure', 'warn', `cannot list listening sockets: ${(e as Error).message}`);
  }
}

/**
 * A pool's router: the gateway names it the router, and each GPU host answers it over mTLS with
 * the router's own certificate (what routing needs). A member: the gateway names a router for it.
 */
async function poolChecks(config: GuardConfig, set: PeerSet, tls: { ca: string; cert: string; key: string }, add: Add): Promise<void> {
  const routers = set.pool?.routers ?? [];
  if (config.pool?.role === 'member') {
    if (routers.length === 0) add('pool router', 'warn', 'the gateway names no pool router: this member serves no one (add-guard --router)');
    else add('pool router', 'ok', `serves ${routers.map((r) => r.name).join(', ')}`);
    return;
  }
  if (!routers.some((r) => r.name === config.name)) {
    add('pool router', 'fail', `guard.json says router, but the gateway does not name ${config.name} the pool's router: it routes to no GPU host`);
    return;
  }
  const members = set.pool?.members ?? [];
  if (members.length === 0) add('pool members', 'warn', 'the pool has no GPU hosts yet (add-guard --member)');
  const agent = new Agent({ connect: tls });
  try {
    for (const m of members) {
      const what = `pool member ${m.name}`;
      try {
        const r = await request(`${m.url}/api/version`, { dispatcher: agent, headersTimeout: 3000, bodyTimeout: 3000 });
        const text = await r.body.text();
        if (r.statusCode === 200) add(what, 'ok', `${m.url} answered over mTLS${m.draining ? ' (draining)' : ''}`);
        else add(what, 'fail', `${m.url} answered ${r.statusCode} ${text.slice(0, 120)}${r.statusCode === 403 ? ' (does the member know this router yet? it learns it from the gateway)' : ''}`);
      } catch (e) {
        add(what, 'fail', `${m.url}: ${(e as Error).message}`);
      }
    }
  } finally {
    await agent.close();
  }
}
