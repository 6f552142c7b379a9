import { generate } from 'otplib';
import { Agent, request } from 'undici';
import { accountService } from '../../src/admin/accounts.js';
import { createSecretBox, loadAdminKey } from '../../src/admin/secret-box.js';
import { startAdminUi } from '../../src/admin/server.js';
import { openGateway, type GatewayContext } from '../../src/gateway/context.js';
import { ensureClosedFirewall } from '../../src/gateway/firewall.js';
import { ensureIngressBarrier } from '../../src/gateway/ingress.js';
import { FakeFirewall } from '../fakes/firewall.js';
import { FakeIngress } from '../fakes/ingress.js';
import { FakeWireguard } from '../fakes/wireguard.js';
import { testCa } from './ca.js';
import { gatewayState } from './gateway-state.js';

export const PASSWORD = 'correct horse battery staple';
const WHO = { actor: 'root', source: 'cli' };

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** Set-Cookie values by name ('' for a cleared cookie). */
  cookies: Record<string, string>;
  setCookie: string[];
}

/**
 * A real gateway state (temp dir, database, CA) with the admin UI listening on
 * 127.0.0.1 over HTTPS, and an HTTP client that trusts the CA. The clock is
 * the test's: `now.ms` moves only when a test moves it. The kernel is the
 * fakes' (`wg`, `fw`, `tc`): by default the interface is up with its address
 * and the closed firewall and tc barrier in place; `interface: false` leaves
 * the interface absent; `subnet` replaces 10.66.0.0/24. What the UI logs at error level lands in `logged`.
 */
export async function startWebEnv(o: { interface?: boolean; subnet?: string } = {}) {
  const state = gatewayState({ name: 'web', config: { subnet: o.subnet ?? '10.66.0.0/24', admin: { listen: ['127.0.0.1:0'], hosts: ['admin.example.com'] } } });
  const { dir, config } = state;
  const ctx: GatewayContext = openGateway(config);
  const wg = new FakeWireguard();
  const fw = new FakeFirewall();
  const tc = new FakeIngress((iface) => wg.ifaces.has(iface));
  const spec = { iface: config.interface, ollamaHost: config.ollamaHost, ollamaPort: config.ollamaPort };
  await ensureClosedFirewall(fw, spec);
  if (o.interface !== false) {
    await wg.create(config.interface, 'auto');
    await wg.addAddress(config.interface, '10.66.0.1/24');
    await wg.setUp(config.interface, true);
    await ensureIngressBarrier(tc, spec);
  }
  const logged: { o: object; msg: string }[] = [];
  const log = { info: () => undefined, warn: () => undefined, error: (x: object, msg: string) => void logged.push({ o: x, msg }) };
  /** What serve tells about itself (the daemon's part of the status). */
  const daemon = { running: true as const, pid: process.pid, lastReconcile: { ok: true, mode: 'full', errors: [] as string[] } as unknown, lastReconcileAt: null as string | null };
  const now = { ms: Date.UTC(2026, 10, 22, 12, 0, 0) };
  const clock = (): number => now.ms;
  const changes = { n: 0 };
  const ui = (await startAdminUi(ctx, {
    log,
    kernel: { wg, fw, tc },
    daemon: async () => daemon,
    clock,
    onChange: () => void changes.n++,
  }))!;
  const port = ui.ports()[0]!;
  const origin = `https://127.0.0.1:${port}`;
  const agent = new Agent({ connect: { ca: testCa().certPem } });
  // For Host-header tests only: undici takes the TLS server name from the Host header.
  const anyNameAgent = new Agent({ connect: { ca: testCa().certPem, servername: 'localhost', checkServerIdentity: () => undefined } });
  const accounts = accountService({ db: ctx.db, clock, box: () => createSecretBox(loadAdminKey(config.paths.adminKey, true)) });

  async function http(method: string, path: string, o: { form?: Record<string, string>; cookie?: string; headers?: Record<string, string>; anyName?: boolean } = {}): Promise<Reply> {
    const headers: Record<string, string> = { host: `127.0.0.1:${port}`, ...(o.cookie ? { cookie: o.cookie } : {}), ...o.headers };
    let body: string | undefined;
    if (o.form) {
      body = new URLSearchParams(o.form).toString();
      headers['content-type'] ??= 'application/x-www-form-urlencoded';
      if (!('origin' in headers) && !o.headers?.['x-no-origin']) headers.origin = origin;
    }
    delete headers['x-no-origin'];
    const r = await request(`${origin}${path}`, { method: method as 'GET', headers, body, dispatcher: o.anyName ? anyNameAgent : agent });
    const text = await r.body.text();
    const raw = r.headers['set-cookie'];
    const setCookie = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
    const cookies: Record<string, string> = {};
    for (const c of setCookie) {
      const m = /^([^=]+)=([^;]*)/.exec(c);
      if (m) cookies[m[1]!] = m[2]!;
    }
    return { status: r.statusCode, headers: r.headers, body: text, cookies, setCookie };
  }

  /** Adds an admin and returns its TOTP secret. */
  async function addAdmin(name: string, role: 'admin' | 'viewer' = 'admin'): Promise<string> {
    const a = await accounts.add({ name, role, password: PASSWORD }, WHO);
    return new URL(a.totpUri).searchParams.get('secret')!;
  }
  const code = (secret: string): Promise<string> => generate({ secret, epoch: Math.floor(now.ms / 1000) });

  /** The login form's CSRF cookie and field. */
  async function loginForm(): Promise<{ cookie: string; token: string }> {
    const page = await http('GET', '/login');
    const token = page.cookies['__Host-wgo_login']!;
    return { cookie: `__Host-wgo_login=${token}`, token };
  }

  async function login(name: string, secret: string, o: { password?: string; next?: string } = {}): Promise<Reply> {
    const f = await loginForm();
    return http('POST', '/login', { cookie: f.cookie, form: { _csrf: f.token, name, password: o.password ?? PASSWORD, code: await code(secret), next: o.next ?? '' } });
  }

  /** Signs in (moving the clock a time step on, so each sign-in has a fresh code) and returns the session cookie and CSRF token. */
  async function session(name: string, secret: string): Promise<{ cookie: string; csrf: string }> {
    now.ms += 30_000;
    const r = await login(name, secret);
    if (r.status !== 303) throw new Error(`login failed: ${r.status} ${r.body.slice(0, 200)}`);
    const cookie = `__Host-wgo_session=${r.cookies['__Host-wgo_session']}`;
    const page = await http('GET', '/peers', { cookie });
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1];
    if (!csrf) throw new Error('no CSRF token on /peers');
    return { cookie, csrf };
  }

  return {
    dir, config, ctx, now, port, wg, fw, tc, daemon, logged, origin, changes, accounts, http, addAdmin, code, loginForm, login, session,
    async close(): Promise<void> {
      await ui.close();
      await agent.close();
      await anyNameAgent.close();
      ctx.close();
      state.cleanup();
    },
  };
}

export type WebEnv = Awaited<ReturnType<typeof startWebEnv>>;
