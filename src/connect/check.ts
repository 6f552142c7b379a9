import { createServer } from 'node:net';
import { Agent, request, type Dispatcher } from 'undici';
import { certificateNotice, describeGuardFailure, type ConnectListen } from '../core/connect.js';
import type { ParsedProfile } from '../core/connect-profile.js';

/** What `connect --check` found, step by step; `ok` only when every step passed. */
export interface CheckReport {
  ok: boolean;
  peer: string;
  guardUrl: string;
  certificate: { serial: string; notAfter: string; expired: boolean; warning: string | null };
  guard: { reachable: boolean; accepted: boolean; status: number | null; version: string | null; error: string | null };
  listen: { address: string; free: boolean; error: string | null };
}

/**
 * Checks what a person needs before pointing a tool at the connector: the
 * certificate's dates, that the guard answers through the tunnel, that it
 * accepts this certificate (GET /api/version with it), and that the local
 * listen address is free.
 */
export async function checkConnect(profile: ParsedProfile, listen: ConnectListen, now: number, timeoutMs = 5000): Promise<CheckReport> {
  const notice = certificateNotice(profile.notAfter, now);
  const guard = await probeGuard(profile, timeoutMs);
  const local = await probeListen(listen);
  return {
    ok: !notice?.expired && guard.accepted,
    peer: profile.peer,
    guardUrl: profile.guardUrl,
    certificate: { serial: profile.serial, notAfter: new Date(profile.notAfter).toISOString(), expired: notice?.expired ?? false, warning: notice?.text ?? null },
    guard,
    listen: { address: listen.text, ...local },
  };
}

async function probeGuard(p: ParsedProfile, timeoutMs: number): Promise<CheckReport['guard']> {
  const agent = new Agent({ connect: { ca: p.ca, cert: p.certificate, key: p.key, timeout: timeoutMs }, connectTimeout: timeoutMs, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  try {
    const r = await request(`${p.guardUrl}/api/version`, { dispatcher: agent as Dispatcher, headers: { accept: 'application/json', 'user-agent': 'wg-ollama-connect/check' } });
    const text = await r.body.text();
    let body: { version?: unknown; error?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      /* not JSON: reported by status */
    }
    if (r.statusCode === 200) return { reachable: true, accepted: true, status: 200, version: typeof body.version === 'string' ? body.version : null, error: null };
    const error = typeof body.error === 'string' ? body.error : `HTTP ${r.statusCode}`;
    // 401/403: the guard no longer accepts this certificate (revoked, rotated, expired, wrong tunnel address).
    const accepted = r.statusCode !== 401 && r.statusCode !== 403;
    return { reachable: true, accepted, status: r.statusCode, version: null, error: accepted ? error : `the guard does not accept this certificate: ${error}` };
  } catch (e) {
    return { reachable: false, accepted: false, status: null, version: null, error: describeGuardFailure(e as NodeJS.ErrnoException, p.guardUrl) };
  } finally {
    await agent.close().catch(() => undefined);
  }
}

/** Whether the connector could listen there now (binds and closes at once). */
function probeListen(l: ConnectListen): Promise<{ free: boolean; error: string | null }> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => resolve({ free: false, error: listenError(e, l) }));
    s.listen({ host: l.host, port: l.port, exclusive: true }, () => s.close(() => resolve({ free: true, error: null })));
  });
}

/** The person-facing text for a listen address the connector cannot take. */
export function listenError(e: NodeJS.ErrnoException, l: ConnectListen): string {
  if (e.code === 'EADDRINUSE') {
    const other = `${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port === 65535 ? l.port - 1 : l.port + 1}`;
    return `${l.text} is already in use (is a local Ollama running?). Stop it, or pick another port with --listen ${other} and point your tools there (OLLAMA_HOST=${other}, or the base URL http://${other})`;
  }
  if (e.code === 'EACCES') return `not allowed to listen on ${l.text} (${e.code}): pick a port above 1023 with --listen`;
  if (e.code === 'EADDRNOTAVAIL') return `${l.text} is not an address of this computer (${e.code})`;
  return `cannot listen on ${l.text}: ${e.message}`;
}

/** The report as lines for a person. */
export function renderCheck(r: CheckReport): string {
  const mark = (ok: boolean): string => (ok ? 'ok  ' : 'FAIL');
  const lines = [
    `peer ${r.peer}, guard ${r.guardUrl}`,
    `${mark(!r.certificate.expired)} certificate ${r.certificate.serial} valid until ${r.certificate.notAfter}`,
  ];
  if (r.certificate.warning) lines.push(`     ${r.certificate.warning}`);
  lines.push(r.guard.reachable ? `ok   guard reachable through the tunnel` : `FAIL ${r.guard.error}`);
  if (r.guard.reachable) {
    lines.push(r.guard.accepted ? `${mark(true)} certificate accepted${r.guard.version ? ` (Ollama ${r.guard.version})` : ''}${r.guard.error ? `; ${r.guard.error}` : ''}` : `FAIL ${r.guard.error}`);
  }
  // In use is fine when it is this connector, already running; --check cannot tell it from a local Ollama.
  lines.push(r.listen.free ? `ok   ${r.listen.address} is free for the connector` : `note ${r.listen.address} is in use: fine if the connector already runs there; otherwise: ${r.listen.error}`);
  return lines.join('\n') + '\n';
}
