import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { auditRepository } from '../../../src/db/audit.js';
import { THROTTLE } from '../../../src/admin/accounts.js';
import { PASSWORD, startWebEnv, type WebEnv } from '../../support/web-env.js';

/** A page without the per-request random tokens, to compare two answers. */
const stable = (body: string): string => body.replace(/value="[A-Za-z0-9_-]{43}"/g, 'value="TOKEN"');

describe('admin UI: sign-in, sessions and request checks (HTTPS on loopback)', () => {
  let env: WebEnv;
  let aliceSecret: string;
  beforeAll(async () => {
    env = await startWebEnv();
    aliceSecret = await env.addAdmin('alice');
  });
  afterAll(() => env.close());

  test('password + TOTP signs in: a __Host- session cookie, Secure, HttpOnly, SameSite=Strict, and the peers page', async () => {
    env.now.ms += 30_000;
    const r = await env.login('alice', aliceSecret);
    expect(r.status).toBe(303);
    expect(r.headers.location).toBe('/peers');
    const c = r.setCookie.find((s) => s.startsWith('__Host-wgo_session='))!;
    expect(c).toMatch(/; Path=\//);
    expect(c).toMatch(/; Secure/);
    expect(c).toMatch(/; HttpOnly/);
    expect(c).toMatch(/; SameSite=Strict/);
    expect(c).not.toMatch(/Domain=/i);
    expect(r.cookies['__Host-wgo_session']).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const peers = await env.http('GET', '/peers', { cookie: `__Host-wgo_session=${r.cookies['__Host-wgo_session']}` });
    expect(peers.status).toBe(200);
    expect(peers.body).toContain('alice (admin)');
  });

  test('each sign-in gets a new session id, and the session id is not stored in the database', async () => {
    const a = await env.session('alice', aliceSecret);
    const b = await env.session('alice', aliceSecret);
    expect(a.cookie).not.toBe(b.cookie);
    const ids = env.ctx.db.prepare('SELECT id_hash FROM admin_sessions').pluck().all() as string[];
    expect(ids.length).toBeGreaterThanOrEqual(2);
    for (const s of [a, b]) expect(ids).not.toContain(s.cookie.split('=')[1]);
  });

  test('wrong code, wrong password and an unknown name get the same answer (no user enumeration)', async () => {
    const bobSecret = await env.addAdmin('bob');
    env.now.ms += 30_000;
    const form = async (name: string, password: string, code: string) => {
      const f = await env.loginForm();
      return env.http('POST', '/login', { cookie: f.cookie, form: { _csrf: f.token, name, password, code, next: '' } });
    };
    const good = await env.code(bobSecret);
    const wrongCode = String((Number(good) + 1) % 1_000_000).padStart(6, '0');
    const answers = [await form('bob', PASSWORD, wrongCode), await form('bob', 'not the password at all', good), await form('nobody-here', PASSWORD, good)];
    for (const a of answers) {
      expect(a.status).toBe(401);
      expect(a.body).toContain('Sign-in failed: the name, password or code is wrong.');
      expect(a.cookies['__Host-wgo_session']).toBeUndefined();
    }
    // Identical pages apart from the echoed name field and the fresh CSRF token.
    const norm = (r: (typeof answers)[number]) => stable(r.body).replace(/name="name"[^>]*value="[^"]*"/, '');
    expect(norm(answers[0]!)).toBe(norm(answers[1]!));
    expect(norm(answers[1]!)).toBe(norm(answers[2]!));
  });

  test('a code accepted once is refused the second time, and the replay is in the audit log', async () => {
    const secret = await env.addAdmin('carol');
    env.now.ms += 30_000;
    expect((await env.login('carol', secret)).status).toBe(303);
    const again = await env.login('carol', secret);
    expect(again.status).toBe(401);
    const rows = auditRepository(env.ctx.db).list({ since: 0 }).filter((r) => r.target === 'carol');
    expect(rows.map((r) => r.action)).toEqual(expect.arrayContaining(['admin.login', 'admin.login.replay']));
    expect(rows.find((r) => r.action === 'admin.login.replay')!.source).toBe('127.0.0.1');
  });

  test(`after ${THROTTLE.perNameAndSource} failures an account is locked (429), even for the right password and code, and unlocks later`, async () => {
    const secret = await env.addAdmin('dave');
    env.now.ms += 30_000;
    for (let i = 0; i < THROTTLE.perNameAndSource; i++) expect((await env.login('dave', secret, { password: `wrong password ${i}` })).status).toBe(401);
    env.now.ms += 30_000;
    const locked = await env.login('dave', secret);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    expect(locked.body).toContain('Too many failed sign-ins');
    // A name that does not exist locks the same way: the lock says nothing about existence.
    for (let i = 0; i < THROTTLE.perNameAndSource; i++) await env.login('ghost', secret, { password: `wrong password ${i}` });
    expect((await env.login('ghost', secret)).status).toBe(429);
    env.now.ms += THROTTLE.lockMs + 30_000;
    expect((await env.login('dave', secret)).status).toBe(303);
  });

  test('a session dies at logout and after 30 minutes idle, and is refused after 12 hours however active', async () => {
    const s = await env.session('alice', aliceSecret);
    expect((await env.http('GET', '/peers', { cookie: s.cookie })).status).toBe(200);
    const out = await env.http('POST', '/logout', { cookie: s.cookie, form: { _csrf: s.csrf } });
    expect(out.status).toBe(303);
    expect(out.setCookie.some((c) => c.startsWith('__Host-wgo_session=;') && /Max-Age=0/.test(c))).toBe(true);
    const after = await env.http('GET', '/peers', { cookie: s.cookie });
    expect(after.status).toBe(303);
    expect(after.headers.location).toMatch(/^\/login/);

    const idle = await env.session('alice', aliceSecret);
    env.now.ms += 29 * 60_000;
    expect((await env.http('GET', '/peers', { cookie: idle.cookie })).status).toBe(200);
    env.now.ms += 31 * 60_000;
    expect((await env.http('GET', '/peers', { cookie: idle.cookie })).status).toBe(303);

    const busy = await env.session('alice', aliceSecret);
    const t0 = env.now.ms;
    for (let t = 25 * 60_000; t < 12 * 3600_000; t += 25 * 60_000) {
      env.now.ms = t0 + t;
      expect((await env.http('GET', '/peers', { cookie: busy.cookie })).status).toBe(200);
    }
    env.now.ms = t0 + 12 * 3600_000 + 60_000;
    expect((await env.http('GET', '/peers', { cookie: busy.cookie })).status).toBe(303);
  });

  test('the sign-in token survives other requests (a second tab, the favicon); icons are never redirected', async () => {
    const first = await env.loginForm();
    const again = await env.http('GET', '/login', { cookie: first.cookie });
    expect(again.cookies['__Host-wgo_login']).toBeUndefined();
    expect(again.body).toContain(`name="_csrf" value="${first.token}"`);
    const icon = await env.http('GET', '/favicon.ico', { cookie: first.cookie });
    expect(icon.status).toBe(204);
    expect(icon.setCookie).toEqual([]);
    const image = await env.http('GET', '/peers', { headers: { 'sec-fetch-dest': 'image' } });
    expect(image.status).toBe(401);
    env.now.ms += 30_000;
    const r = await env.http('POST', '/login', { cookie: first.cookie, form: { _csrf: first.token, name: 'alice', password: PASSWORD, code: await env.code(aliceSecret), next: '' } });
    expect(r.status).toBe(303);
    // A malformed login cookie is replaced, not trusted.
    const odd = await env.http('GET', '/login', { cookie: '__Host-wgo_login=short' });
    expect(odd.cookies['__Host-wgo_login']).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  test('the login form needs its CSRF cookie, and a cross-origin POST is refused', async () => {
    const f = await env.loginForm();
    env.now.ms += 30_000;
    const noToken = await env.http('POST', '/login', { form: { name: 'alice', password: PASSWORD, code: await env.code(aliceSecret) } });
    expect(noToken.status).toBe(403);
    const cross = await env.http('POST', '/login', { cookie: f.cookie, form: { _csrf: f.token, name: 'alice', password: PASSWORD, code: await env.code(aliceSecret) }, headers: { origin: 'https://evil.example' } });
    expect(cross.status).toBe(403);
    expect(cross.body).toContain('Cross-origin');
  });

  test('state-changing requests need the session CSRF token and this Origin; nothing changes otherwise', async () => {
    const s = await env.session('alice', aliceSecret);
    const attempts = [
      await env.http('POST', '/peers', { cookie: s.cookie, form: { name: 'csrf1' } }),
      await env.http('POST', '/peers', { cookie: s.cookie, form: { _csrf: 'x'.repeat(43), name: 'csrf2' } }),
      await env.http('POST', '/peers', { cookie: s.cookie, form: { _csrf: s.csrf, name: 'csrf3' }, headers: { origin: 'https://evil.example' } }),
      await env.http('POST', '/peers', { cookie: s.cookie, form: { _csrf: s.csrf, name: 'csrf4' }, headers: { 'x-no-origin': '1' } }),
      await env.http('POST', '/peers', { cookie: s.cookie, form: { _csrf: s.csrf, name: 'csrf5' }, headers: { origin: 'null' } }),
    ];
    for (const a of attempts) expect(a.status).toBe(403);
    expect(env.ctx.peers.list().map((p) => p.name)).toEqual([]);
    // Referer from this origin stands in for a missing Origin.
    const withReferer = await env.http('POST', '/peers', { cookie: s.cookie, form: { _csrf: s.csrf, name: 'csrf6' }, headers: { 'x-no-origin': '1', referer: `${env.origin}/peers/new` } });
    expect(withReferer.status).toBe(200);
    expect(env.ctx.peers.list().map((p) => p.name)).toEqual(['csrf6']);
  });

  test('security headers: a CSP without inline script, no framing, nosniff, no caching', async () => {
    const r = await env.http('GET', '/login');
    const csp = String(r.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['x-frame-options']).toBe('DENY');
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.headers['x-powered-by']).toBeUndefined();
  });

  test('the Host header must be one of the configured names', async () => {
    for (const host of ['evil.example', 'admin.example.com.evil.example', '127.0.0.2', '', 'a b']) {
      const r = await env.http('GET', '/login', { headers: { host }, anyName: true });
      expect(r.status, host).toBeGreaterThanOrEqual(400);
      expect(r.body).not.toContain('<form');
    }
    for (const host of ['admin.example.com', 'ADMIN.example.com:8443', 'localhost', `127.0.0.1:${env.port}`]) {
      expect((await env.http('GET', '/login', { headers: { host }, anyName: true })).status, host).toBe(200);
    }
  });

  test('static files: no path traversal out of web/static', async () => {
    expect((await env.http('GET', '/static/style.css')).status).toBe(200);
    for (const p of ['/static/../../package.json', '/static/%2e%2e/%2e%2e/package.json', '/static/..%2f..%2fpackage.json', '/static/%2e%2e%2f%2e%2e%2fpackage.json', '/static/..%5c..%5cpackage.json', '/static/.hidden', '/static/']) {
      const r = await env.http('GET', p);
      // Refused, or (where the client normalised the dots away) the sign-in redirect: never the file.
      expect(r.status, p).not.toBe(200);
      expect(r.body, p).not.toContain('"name": "wg-ollama"');
    }
  });

  test('sign-in redirects only to paths of this UI (no open redirect)', async () => {
    for (const next of ['//evil.example/x', 'https://evil.example/', '/\\evil.example', '/%2f%2fevil.example', 'javascript:alert(1)', '/peers/../../x']) {
      const secret = await env.addAdmin(`r${Math.abs(hash(next)) % 100000}`);
      env.now.ms += 30_000;
      const r = await env.login(`r${Math.abs(hash(next)) % 100000}`, secret, { next });
      expect(r.status, next).toBe(303);
      expect(r.headers.location, next).toBe('/peers');
    }
    env.now.ms += 30_000;
    expect((await env.login('alice', aliceSecret, { next: '/logs/audit?since=1h' })).headers.location).toBe('/logs/audit?since=1h');
  });

  test('a viewer reads but cannot change anything', async () => {
    const secret = await env.addAdmin('vera', 'viewer');
    const s = await env.session('vera', secret);
    expect((await env.http('GET', '/peers', { cookie: s.cookie })).status).toBe(200);
    expect((await env.http('GET', '/logs/audit', { cookie: s.cookie })).status).toBe(200);
    expect((await env.http('GET', '/peers/new', { cookie: s.cookie })).status).toBe(403);
    const before = env.ctx.peers.list().length;
    expect((await env.http('POST', '/peers', { cookie: s.cookie, form: { _csrf: s.csrf, name: 'viewer-made' } })).status).toBe(403);
    expect((await env.http('POST', '/enroll', { cookie: s.cookie, form: { _csrf: s.csrf, name: 'viewer-link' } })).status).toBe(403);
    expect((await env.http('POST', '/peers/csrf6/revoke', { cookie: s.cookie, form: { _csrf: s.csrf } })).status).toBe(403);
    expect(env.ctx.peers.list().length).toBe(before);
    expect(env.ctx.peers.show('csrf6').status).toBe('active');
    // but may sign out
    expect((await env.http('POST', '/logout', { cookie: s.cookie, form: { _csrf: s.csrf } })).status).toBe(303);
  });

  test('without a session: pages redirect to sign-in, POSTs are 401, and nothing changes', async () => {
    const r = await env.http('GET', '/peers/csrf6');
    expect(r.status).toBe(303);
    expect(r.headers.location).toBe('/login?next=%2Fpeers%2Fcsrf6');
    const f = await env.loginForm();
    expect((await env.http('POST', '/peers/csrf6/revoke', { cookie: f.cookie, form: { _csrf: f.token } })).status).toBe(401);
    expect(env.ctx.peers.show('csrf6').status).toBe('active');
  });
});

function hash(s: string): number {
  let h = 0;
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) | 0;
  return h;
}
