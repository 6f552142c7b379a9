import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Download, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { requestRepository } from '../../src/db/requests.js';
import type { RequestRecord } from '../../src/core/request-record.js';
import {
  decodeQr, filesUnder, launchChromium, newContext, p12Certificates, PASSWORD, startUiEnv, submitLogin, totp, wrongCode, type UiEnv,
} from './env.js';

// The admin UI in real Chromium: sign-in with TOTP, the one-time key page
// (QR decoded from a screenshot, downloads), enrollment links, revoke with the
// audit trail, escaping of hostile input, CSP, and screenshots at two sizes.

const SHOTS = join(process.cwd(), 'test-artifacts', 'screenshots');
const SESSION_COOKIE = '__Host-wgo_session';
const LOGIN_FAILED = 'Sign-in failed: the name, password or code is wrong.';
/**
 * Console errors that are not failures: Chromium logs every 4xx answer (wrong
 * sign-in, bad names, used links are tested on purpose).
 */
const EXPECTED_CONSOLE = [/^Failed to load resource: the server responded with a status of 4\d\d /];
const unexpected = (errors: string[]): string[] => errors.filter((e) => !EXPECTED_CONSOLE.some((re) => re.test(e)));

let env: UiEnv;
let browser: Browser;
/** alice's signed-in context: most tests act as her. */
let admin: { context: BrowserContext; dialogs: string[]; consoleErrors: string[] };
let work: string;

beforeAll(async () => {
  env = await startUiEnv();
  browser = await launchChromium();
  work = mkdtempSync(join(tmpdir(), 'wgo-browser-files-'));
  mkdirSync(SHOTS, { recursive: true });
  const alice = await env.addAdmin('alice');
  admin = await newContext(browser);
  const page = await admin.context.newPage();
  const status = await submitLogin(page, env.url, alice.name, PASSWORD, await totp(alice.secret));
  if (status !== 303 || !page.url().endsWith('/peers')) throw new Error(`alice could not sign in: ${status} ${page.url()}`);
  await page.close();
});

afterAll(async () => {
  await browser?.close();
  await env?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

// Each test answers for what it made the browser and the server log: alice's
// pages logged no console errors (CSP violations included), the server no errors.
afterEach(() => {
  const consoleErrors = unexpected(admin.consoleErrors.splice(0));
  const serverErrors = env.serverErrors.splice(0);
  expect({ consoleErrors, serverErrors }).toEqual({ consoleErrors: [], serverErrors: [] });
});

const adminPage = async (path: string): Promise<Page> => {
  const page = await admin.context.newPage();
  await page.goto(env.url + path);
  return page;
};

/** Clicks a download link and returns the suggested file name and the bytes. */
async function download(page: Page, selector: string): Promise<{ name: string; bytes: Buffer }> {
  const [d]: [Download, void] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const path = await d.path();
  return { name: d.suggestedFilename(), bytes: readFileSync(path) };
}

/** Submits the add-peer form and waits for the answer; returns its status. */
async function addPeerViaForm(page: Page, name: string): Promise<number> {
  await page.goto(`${env.url}/peers/new`);
  await page.fill('input[name=name]', name);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${env.url}/peers` && r.request().method() === 'POST'),
    page.click('form[action="/peers"] button[type=submit]'),
  ]);
  await page.waitForLoadState();
  return response.status();
}

/** The QR code on the page as the bytes zbarimg decodes from a PNG screenshot of #qr. */
async function qrBytes(page: Page, file: string): Promise<Buffer> {
  const png = join(work, file);
  await page.locator('#qr').screenshot({ path: png });
  return decodeQr(png);
}

const privateKeyOf = (conf: string): string => {
  const m = /^PrivateKey = ([A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=)$/m.exec(conf);
  if (!m) throw new Error(`no PrivateKey line in:\n${conf}`);
  return m[1]!;
};

/** The rows of table#log as arrays of cell texts. */
const logRows = (page: Page): Promise<string[][]> =>
  page.$$eval('table#log tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));

describe('sign-in', () => {
  test('name, password and the current TOTP code sign in to the peers page; the session cookie is HttpOnly, Secure, SameSite=Strict', async () => {
    const bob = await env.addAdmin('bob');
    const { context } = await newContext(browser);
    const page = await context.newPage();
    expect(await submitLogin(page, env.url, 'bob', PASSWORD, await totp(bob.secret))).toBe(303);
    expect(new URL(page.url()).pathname).toBe('/peers');
    expect(await page.textContent('h1')).toBe('Peers');
    await expect(page.locator('table#peers').isVisible()).resolves.toBe(true);
    expect(await page.textContent('header .who')).toBe('bob (admin)');
    const cookie = (await context.cookies()).find((c) => c.name === SESSION_COOKIE);
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
    expect(await page.evaluate(() => document.cookie)).not.toContain(SESSION_COOKIE);
    await context.close();
  });

  test('a wrong code, or a wrong password, shows the same generic error and gives no session', async () => {
    const carol = await env.addAdmin('carol');
    const { context } = await newContext(browser);
    const page = await context.newPage();

    expect(await submitLogin(page, env.url, 'carol', PASSWORD, await wrongCode(carol.secret))).toBe(401);
    expect(new URL(page.url()).pathname).toBe('/login');
    expect((await page.textContent('#login-error'))?.trim()).toBe(LOGIN_FAILED);
    expect(await page.inputValue('input[name=password]')).toBe('');

    expect(await submitLogin(page, env.url, 'carol', 'not the password at all', await totp(carol.secret))).toBe(401);
    expect((await page.textContent('#login-error'))?.trim()).toBe(LOGIN_FAILED);

    expect((await context.cookies()).map((c) => c.name)).not.toContain(SESSION_COOKIE);
    const r = await page.goto(`${env.url}/peers`);
    expect(r?.status()).toBe(200);
    expect(new URL(page.url()).pathname).toBe('/login');
    expect(await page.$('#login-error')).toBeNull();
    await context.close();
  });
});

describe('the one-time key page', () => {
  let page: Page;

  beforeAll(async () => {
    page = await admin.context.newPage();
  });
  afterAll(async () => page.close());

  test('create a peer: the QR code decodes to the downloaded .conf byte for byte, which is the #config text; the .p12 opens with the shown passphrase', async () => {
    expect(await addPeerViaForm(page, 'laptop-1')).toBe(200);
    expect(await page.textContent('h1')).toBe('Peer laptop-1 created');

    const d = await download(page, '#download-conf');
    expect(d.name).toBe('laptop-1.conf');
    const conf = d.bytes;
    const text = conf.toString('utf8');
    expect(text).toMatch(/^\[Interface\]\n/);
    expect(text).toContain('\n[Peer]\n');
    expect(text).toContain(`Endpoint = vpn.example.com:51820`);
    privateKeyOf(text);

    const qr = await qrBytes(page, 'laptop-1-qr.png');
    expect(qr.length).toBe(conf.length);
    expect(qr.equals(conf)).toBe(true);
    expect(await page.locator('#config').textContent()).toBe(text);

    const p12 = await download(page, '#download-p12');
    expect(p12.name).toBe('laptop-1.p12');
    const p12File = join(work, 'laptop-1.p12');
    writeFileSync(p12File, p12.bytes);
    const passphrase = (await page.textContent('#p12-passphrase'))!.trim();
    expect(passphrase.length).toBeGreaterThanOrEqual(16);
    const opened = await p12Certificates(p12File, passphrase);
    expect(opened.stderr).not.toMatch(/error/i);
    expect(opened.ok).toBe(true);
    // The peer's certificate (named for the key store) and the CA's.
    expect(opened.stdout.match(/^subject=.*$/gm)).toEqual(['subject=CN = laptop-1, O = wg-ollama, OU = peer', 'subject=CN = wg-ollama test CA, O = wg-ollama']);
    expect(opened.stdout).toContain('friendlyName: wg-ollama laptop-1');
    expect(opened.stdout).not.toContain('PRIVATE KEY');
    // The passphrase is what opens it: another one does not.
    expect((await p12Certificates(p12File, passphrase + 'x')).ok).toBe(false);
  });

  test('after the one-time page the keys are gone: not on the peer page, not after Back or reload (back/forward cache and repost prompt on), not in any file of the state directory', async () => {
    const everyday = await launchChromium({ everyday: true });
    try {
      // Signed in (alice's cookies); /favicon.ico is fetched as usual: signed in, it does no harm.
      const { context } = await newContext(everyday, { storageState: await admin.context.storageState() });
      const p = await context.newPage();
      expect(await addPeerViaForm(p, 'laptop-2')).toBe(200);
      const conf2 = (await p.locator('#config').textContent())!;
      const privateKey = privateKeyOf(conf2);
      const certKeyPem = Buffer.from((await p.getAttribute('#download-key', 'href'))!.replace(/^data:[^,]*;base64,/, ''), 'base64').toString('utf8');
      expect(certKeyPem).toContain('PRIVATE KEY-----');

      const noKeys = async (when: string): Promise<void> => {
        const html = await p.content();
        expect(html, when).not.toContain('PrivateKey');
        expect(html, when).not.toContain(privateKey);
        expect(html, when).not.toContain('PRIVATE KEY');
        expect(await p.$('#qr'), when).toBeNull();
        expect(await p.$('#download-conf'), when).toBeNull();
        expect(await p.$('#p12-passphrase'), when).toBeNull();
      };
      await Promise.all([p.waitForURL(`${env.url}/peers/laptop-2`), p.click('a[href="/peers/laptop-2"]')]);
      expect(await p.textContent('h1')).toBe('Peer laptop-2 active');
      await noKeys('on the peer page');

      // Back to the answer to the POST: no-store keeps it out of every cache, so Chromium asks before sending the form again.
      await p.goBack().catch(() => null); // net::ERR_CACHE_MISS: Chromium shows its own page instead
      // Wait for whichever page Back ends on: Chromium's question, or (wrongly) the keys again.
      await p.waitForFunction(() => /Confirm Form Resubmission|PrivateKey/.test(document.documentElement.outerHTML));
      await noKeys('after Back');
      expect(await p.content()).toContain('Confirm Form Resubmission');
      // Reload sends the form again: the name is taken now, so the form comes back with the error (409), without keys.
      const again = await p.reload();
      expect(again?.status()).toBe(409);
      expect(await p.textContent('form p.error')).toBe('a peer named "laptop-2" already exists');
      await noKeys('after reload');
      await context.close();

      // Neither of the peer's keys is anywhere on disk: database, WAL, anything else.
      const secrets = [privateKey].flatMap((k) => [Buffer.from(k), Buffer.from(k, 'base64')]);
      const certKeyDer = Buffer.from(certKeyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
      secrets.push(certKeyDer.subarray(-64));
      const files = filesUnder(env.config.stateDir);
      expect(files.map((f) => f.path)).toContain(env.config.paths.db);
      expect(files.map((f) => f.path)).toContain(`${env.config.paths.db}-wal`);
      for (const f of files) for (const k of secrets) expect(f.bytes.includes(k), `${f.path} holds a key`).toBe(false);
      // The search itself works: the peer's public key is in the database.
      expect(files.some((f) => f.bytes.includes(Buffer.from(env.ctx.peers.show('laptop-2').publicKey)))).toBe(true);
    } finally {
      await everyday.close();
    }
  });
});

describe('enrollment links', () => {
  test('a link opened in a fresh browser issues the peer once; opened again it answers 410, and a page loaded before the use cannot use it either', async () => {
    const page = await adminPage('/enroll');
    await page.fill('form[action="/enroll"] input[name=name]', 'phone-ann');
    await Promise.all([page.waitForURL(`${env.url}/enroll`), page.click('form[action="/enroll"] button[type=submit]')]);
    const link = (await page.textContent('#enroll-link'))!.trim();
    expect(link).toMatch(new RegExp(`^${env.url.replace(/[.]/g, '\\.')}/e/[A-Za-z0-9_-]{43}$`));
    expect(await page.$$eval('table#enrollments tbody tr', (trs) => trs.map((tr) => tr.textContent ?? '').filter((t) => t.includes('phone-ann') && t.includes('open')).length)).toBe(1);

    const stranger = await newContext(browser);
    expect(await stranger.context.cookies()).toEqual([]);
    const first = await stranger.context.newPage();
    const stale = await stranger.context.newPage();
    for (const p of [first, stale]) {
      const r = await p.goto(link);
      expect(r?.status()).toBe(200);
      expect(await p.textContent('h1')).toBe('Set up wg-ollama on this device');
      expect(await p.textContent('form strong')).toBe('phone-ann');
    }

    const [used] = await Promise.all([first.waitForResponse((r) => r.url() === link && r.request().method() === 'POST'), first.click('#enroll-go')]);
    await first.waitForLoadState();
    expect(used.status()).toBe(200);
    expect(await first.textContent('h1')).toBe('Your access: phone-ann');
    const conf = await download(first, '#download-conf');
    expect(conf.name).toBe('phone-ann.conf');
    expect((await qrBytes(first, 'phone-ann-qr.png')).equals(conf.bytes)).toBe(true);
    // The person enrolling is not signed in: no link into the admin pages.
    expect(await first.$('a[href="/peers/phone-ann"]')).toBeNull();
    expect(await first.$('header nav')).toBeNull();

    const again = await first.goto(link);
    expect(again?.status()).toBe(410);
    expect(await first.textContent('h1')).toBe('This link does not work');
    expect(await first.$('#enroll-go')).toBeNull();
    expect(await first.content()).not.toContain('PrivateKey');

    const [late] = await Promise.all([stale.waitForResponse((r) => r.url() === link && r.request().method() === 'POST'), stale.click('#enroll-go')]);
    await stale.waitForLoadState();
    expect(late.status()).toBe(410);
    expect(await stale.textContent('h1')).toBe('This link does not work');
    expect(await stale.content()).not.toContain('PrivateKey');

    // One peer was made, and the admin's list says the link is used.
    expect(env.ctx.peers.list({ includeRevoked: true }).filter((p) => p.name === 'phone-ann')).toHaveLength(1);
    await page.goto(`${env.url}/enroll`);
    const row = await page.$$eval('table#enrollments tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')).find((c) => c[0] === 'phone-ann'));
    expect(row?.[1]).toBe('used');
    expect(row?.[5]).toMatch(/ from 127\.0\.0\.1$/);
    await stranger.context.close();
    await page.close();
  });
});

describe('revoke', () => {
  test('peer page → Revoke → confirmation → the peer shows revoked, and the audit log names the action, the admin and the source', async () => {
    env.ctx.peers.add({ name: 'old-laptop' }, { actor: 'root', source: 'cli' });
    const page = await adminPage('/peers/old-laptop');
    expect(await page.textContent('h1 .status')).toBe('active');
    await Promise.all([page.waitForURL(`${env.url}/peers/old-laptop/revoke`), page.click('a.button.danger[href="/peers/old-laptop/revoke"]')]);
    expect(await page.textContent('h1')).toBe('Revoke old-laptop');
    await Promise.all([page.waitForURL(`${env.url}/peers/old-laptop?done=revoke`), page.click('#confirm')]);
    expect(await page.textContent('h1 .status')).toBe('revoked');
    expect(await page.textContent('.flash')).toBe('Revoked.');
    expect(await page.$('a[href="/peers/old-laptop/revoke"]')).toBeNull();
    expect(env.ctx.peers.show('old-laptop').status).toBe('revoked');

    await page.goto(`${env.url}/peers?status=revoked`);
    expect(await page.textContent('table#peers tr[data-peer="old-laptop"] .status')).toBe('revoked');

    await page.goto(`${env.url}/logs/audit`);
    const rows = await logRows(page);
    const revoke = rows.filter((c) => c[3] === 'peer.revoke');
    expect(revoke).toHaveLength(1);
    expect(revoke[0]!.slice(1, 5)).toEqual(['alice', '127.0.0.1', 'peer.revoke', 'old-laptop']);
    await page.close();
  });
});

describe('hostile input is shown as text', () => {
  const PAYLOADS = ['<img src=x onerror=alert(1)>', '"><script>alert(1)</script>'];

  // The CSP alone would stop these scripts, so "no dialog" proves little by itself:
  // the DOM checks (no element made from the payload) are what catch missing escaping.
  test.each(PAYLOADS)('a peer named %s: the error shows inline and the payload stays text in the form', async (payload) => {
    const before = admin.dialogs.length;
    const page = await adminPage('/peers/new');
    await page.fill('input[name=name]', payload);
    // Past the form's own checks (a hostile client has none): what the server sends back is tested.
    await page.$eval('form[action="/peers"]', (f) => void ((f as HTMLFormElement).noValidate = true));
    const [r] = await Promise.all([
      page.waitForResponse((x) => x.url() === `${env.url}/peers` && x.request().method() === 'POST'),
      page.click('form[action="/peers"] button[type=submit]'),
    ]);
    await page.waitForLoadState();
    expect(r.status()).toBe(400);
    expect(await page.textContent('h1')).toBe('Add a peer');
    expect(await page.textContent('form p.error')).toBe('peer name may contain only a-z, 0-9, ".", "_" and "-", and must start with a letter or digit');
    expect(await page.inputValue('input[name=name]')).toBe(payload);
    expect(await page.$$('img')).toHaveLength(0);
    expect(await page.$$eval('script', (s) => s.length)).toBe(0);
    expect(await page.$$eval('input', (is) => is.map((i) => i.getAttribute('name')))).toEqual(['_csrf', '_csrf', 'name', 'expires']);
    expect(admin.dialogs.length).toBe(before);
    expect(env.ctx.peers.list({ includeRevoked: true }).map((p) => p.name)).not.toContain(payload);
    await page.close();
  });

  test('a request record whose model and path are script payloads shows as text in the request log', async () => {
    const model = '<script>alert("model")</script>';
    const path = '/api/<img src=x onerror=alert(2)><script>alert("path")</script>';
    const record: RequestRecord = {
      seq: 1, at: Date.now(), peer: 'laptop-1', certSerial: null, source: '10.66.0.2', method: 'POST', path, endpoint: 'chat', model,
      promptSha256: null, promptLength: null, promptText: null, status: 403, bytesIn: 10, bytesOut: 0, promptTokens: null, evalTokens: null,
      ttfbMs: null, durationMs: 3, refusal: 'model_denied',
    };
    expect(requestRepository(env.ctx.db).insertBatch('local', [record])).toBe(1);
    const before = admin.dialogs.length;
    const page = await adminPage('/logs/requests');
    const rows = await logRows(page);
    // Columns by their headings, so a column added to the log does not move what is checked.
    const heads = await page.$$eval('table#log thead th', (ths) => ths.map((th) => th.textContent ?? ''));
    const col = (name: string): number => heads.indexOf(name);
    expect(col('Model'), JSON.stringify(heads)).toBeGreaterThan(-1);
    const row = rows.find((c) => c[col('Model')] === model);
    expect(row, JSON.stringify(rows)).toBeDefined();
    expect(row![col('Request')]).toBe(`POST ${path}`);
    expect(await page.locator('table#log').innerText()).toContain(model);
    expect(await page.$$eval('script', (s) => s.map((x) => x.textContent))).toEqual([]);
    expect(await page.$$('img')).toHaveLength(0);
    expect(admin.dialogs.length).toBe(before);
    await page.close();
  });
});

describe('content security policy', () => {
  test('/peers allows scripts only from the UI itself, no inline script; Chromium refuses an inline script put into the page', async () => {
    // Its own context: the refused script logs a console error, which the other pages must not.
    const own = await newContext(browser, { storageState: await admin.context.storageState() });
    const page = await own.context.newPage();
    const r = await page.goto(`${env.url}/peers`);
    const csp = r!.headers()['content-security-policy'];
    expect(csp).toBeDefined();
    const directives = new Map(csp!.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k!, v]));
    expect(directives.get('script-src')).toEqual(["'self'"]);
    expect(directives.get('default-src')).toEqual(["'none'"]);
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');

    const outcome = await page.evaluate(
      () =>
        new Promise<{ ran: boolean; violated: string | null }>((resolve) => {
          let violated: string | null = null;
          document.addEventListener('securitypolicyviolation', (e) => (violated = e.effectiveDirective));
          const s = document.createElement('script');
          s.textContent = 'window.__inlineRan = true';
          document.body.appendChild(s);
          setTimeout(() => resolve({ ran: (window as unknown as { __inlineRan?: boolean }).__inlineRan === true, violated }), 200);
        }),
    );
    expect(outcome).toEqual({ ran: false, violated: 'script-src-elem' });
    expect(own.consoleErrors.some((e) => e.includes('Content Security Policy'))).toBe(true);
    await own.context.close();
  });
});

describe('layout', () => {
  const VIEWPORTS = [
    { name: 'phone', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
    { name: 'desktop', viewport: { width: 1366, height: 900 }, isMobile: false, hasTouch: false, deviceScaleFactor: 1 },
  ];

  test.each(VIEWPORTS)('screenshots of the main pages at $name size; no page scrolls sideways', async ({ name, viewport, isMobile, hasTouch, deviceScaleFactor }) => {
    const o = { viewport, isMobile, hasTouch, deviceScaleFactor };
    /** Full-page screenshot, and the page is no wider than the viewport (wide tables scroll inside .table-wrap). */
    const shot = async (page: Page, what: string): Promise<void> => {
      await page.screenshot({ path: join(SHOTS, `${name}-${what}.png`), fullPage: true });
      const w = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
      expect(w.scrollWidth, `${what} is ${w.scrollWidth}px wide in a ${w.innerWidth}px viewport`).toBeLessThanOrEqual(w.innerWidth);
    };

    const anon = await newContext(browser, o);
    const login = await anon.context.newPage();
    await login.goto(`${env.url}/login`);
    await shot(login, 'login');
    await anon.context.close();

    const signedIn = await newContext(browser, { ...o, storageState: await admin.context.storageState() });
    const page = await signedIn.context.newPage();
    // A peer of its own, so the list has a row whichever tests ran before.
    env.ctx.peers.add({ name: `listed-${name}` }, { actor: 'test', source: 'cli' });
    await page.goto(`${env.url}/peers`);
    expect(await page.$$('table#peers tbody tr[data-peer]')).not.toHaveLength(0);
    await shot(page, 'peers');
    const peer = `shot-${name}`;
    expect(await addPeerViaForm(page, peer)).toBe(200);
    await page.click('details summary'); // the config text too
    expect(await page.locator('#config').isVisible()).toBe(true);
    await shot(page, 'issued');
    for (const [what, path] of [['peer', `/peers/${peer}`], ['enroll', '/enroll'], ['audit', '/logs/audit'], ['status', '/status']] as const) {
      const r = await page.goto(env.url + path);
      expect(r?.status(), path).toBe(200);
      await shot(page, what);
    }
    expect(unexpected(signedIn.consoleErrors)).toEqual([]);
    await signedIn.context.close();
  });
});

describe('bugs found here, now fixed (regression tests)', () => {
  test('sign-in works although the browser loads other things meanwhile (the favicon once replaced the form\'s CSRF cookie)', async () => {
    const dave = await env.addAdmin('dave');
    const { context } = await newContext(browser);
    const page = await context.newPage();
    try {
      await page.goto(`${env.url}/login`);
      // A second tab on the sign-in page, and an icon request, must not void the first form.
      const other = await context.newPage();
      await other.goto(`${env.url}/login`);
      await page.evaluate(() => undefined);
      const icon = await context.request.get(`${env.url}/favicon.ico`);
      expect(icon.status()).toBe(204);
      const formToken = await page.inputValue('input[name=_csrf]');
      const cookieToken = async (): Promise<string | undefined> => (await context.cookies()).find((c) => c.name === '__Host-wgo_login')?.value;
      // Give the browser's own /favicon.ico request (made after load) time to land, as a person typing would.
      for (let i = 0; i < 30 && (await cookieToken()) === formToken; i++) await page.waitForTimeout(100);
      expect(await cookieToken()).toBe(formToken);
      await page.fill('input[name=name]', 'dave');
      await page.fill('input[name=password]', PASSWORD);
      await page.fill('input[name=code]', await totp(dave.secret));
      await Promise.all([page.waitForURL(`${env.url}/peers`, { timeout: 5_000 }), page.click('form[action="/login"] button[type=submit]')]);
    } finally {
      await context.close();
    }
  });

  test('the add-peer form\'s pattern compiles in Chromium (v flag), so the browser holds back a bad name', async () => {
    const { context, consoleErrors } = await newContext(browser, { storageState: await admin.context.storageState() });
    const page = await context.newPage();
    try {
      await page.goto(`${env.url}/peers/new`);
      await page.fill('input[name=name]', 'Not A Name!');
      expect(await page.$eval('input[name=name]', (i) => (i as HTMLInputElement).validity.patternMismatch)).toBe(true);
      expect(consoleErrors.filter((e) => e.includes('Pattern attribute'))).toEqual([]);
    } finally {
      await context.close();
    }
  });
});

