#!/usr/bin/env node
// Chromium (playwright-core) on the guard's chat page, run inside the client
// namespace: Playwright makes the TLS connection that presents the client
// certificate (clientCertificates) from this Node process, so this process must
// be where the tunnel is. The .p12 passphrase comes on standard input.
//
//   node chat-browser.mjs --scenario chat|cross-origin|no-cert|open --url URL
//        [--p12 FILE] [--spki HASH] [--shots DIR] [--model M]  < passphrase
//
// Trust of the guard's server certificate: with clientCertificates, Chromium
// talks to Playwright's local proxy (which Playwright trusts internally), and
// the proxy's own Node TLS client verifies the guard (never ignoreHTTPSErrors
// here) against Node's store: the default CAs, NODE_EXTRA_CA_CERTS, and the CA
// certificates inside the .p12 (Node adds those to the context's trust store;
// add-peer puts ca.crt into every .p12). Without a client certificate Chromium
// connects itself and trusts exactly the guard's key
// (--ignore-certificate-errors-spki-list, --spki).
//
// Prints one JSON line: {ok: true, ...scenario results} or {ok: false, error}.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: a } = parseArgs({
  strict: true,
  options: {
    scenario: { type: 'string' }, url: { type: 'string' }, p12: { type: 'string' }, spki: { type: 'string' },
    shots: { type: 'string' }, model: { type: 'string', default: 'qwen2.5:0.5b' },
  },
});
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const DESKTOP = { viewport: { width: 1280, height: 800 } };
const origin = new URL(a.url).origin;

function readStdin() {
  try {
    return readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  } catch {
    return '';
  }
}

/** Console errors and page errors (a CSP violation logs one), and every URL the page asked for. */
function watch(page, seen) {
  page.on('console', (m) => m.type() === 'error' && seen.errors.push(m.text()));
  page.on('pageerror', (e) => seen.errors.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => {
    seen.errors.push(`dialog: ${d.message()}`);
    void d.dismiss().catch(() => undefined);
  });
  page.on('request', (r) => seen.requests.push(`${r.method()} ${r.url()}`));
}

const bubbles = (page) =>
  page.$$eval('#log .msg', (els) => els.map((e) => ({ kind: e.className, state: e.dataset.state ?? null, text: e.textContent, elements: e.querySelectorAll('*').length })));

/** Sends a message and waits until its answer has the given state (or, for 'streaming', has begun). */
async function send(page, text, until = 'done') {
  const before = await page.locator('#log .msg.assistant').count();
  await page.fill('#prompt', text);
  await page.click('#send');
  const answer = page.locator('#log .msg.assistant').nth(before);
  if (until === 'streaming') {
    await page.waitForFunction((i) => (document.querySelectorAll('#log .msg.assistant')[i]?.textContent ?? '').length > 0, before, { timeout: 20_000 });
  } else {
    await answer.and(page.locator(`[data-state="${until}"]`)).waitFor({ timeout: 20_000 });
  }
  return answer;
}

async function chatScenario(browser, pass) {
  const certs = [{ origin, pfxPath: a.p12, passphrase: pass }];
  const seen = { errors: [], requests: [] };
  const ctx = await browser.newContext({ ...PHONE, clientCertificates: certs });
  const page = await ctx.newPage();
  watch(page, seen);
  const res = await page.goto(a.url + '/');
  const headers = res.headers();
  await page.waitForFunction(() => !document.querySelector('#model').disabled, null, { timeout: 15_000 });
  const models = await page.$$eval('#model option', (o) => o.map((x) => x.value));
  await page.selectOption('#model', a.model);
  const title = await page.title();

  // 1. A whole answer, streamed; the simulator's text carries HTML and a <script>.
  await send(page, 'first question');
  const first = await bubbles(page);
  const injected = await page.evaluate(() => ({
    pwned: window.__pwned ?? null,
    title: document.title,
    elementsInLog: document.querySelectorAll('#log *:not(.msg):not(.note)').length,
  }));
  await page.screenshot({ path: join(a.shots, 'chat-phone.png') });

  // 2. Stopped mid-stream.
  await send(page, 'second question', 'streaming');
  await page.click('#stop');
  await page.locator('#log .msg.assistant').nth(1).and(page.locator('[data-state="stopped"]')).waitFor({ timeout: 10_000 });
  const stopped = await bubbles(page);
  const stopDisabled = await page.isDisabled('#stop');
  await page.screenshot({ path: join(a.shots, 'chat-phone-stopped.png') });

  // 3. New chat: the page is empty and the next request carries only the new message.
  await page.click('#new');
  const afterNew = await bubbles(page);
  await send(page, 'third question');
  const third = await bubbles(page);
  await ctx.close();

  // The same page at desktop size.
  const dctx = await browser.newContext({ ...DESKTOP, clientCertificates: certs });
  const dpage = await dctx.newPage();
  watch(dpage, seen);
  await dpage.goto(a.url + '/');
  await dpage.waitForFunction(() => !document.querySelector('#model').disabled, null, { timeout: 15_000 });
  await send(dpage, 'a question from the desktop');
  await dpage.screenshot({ path: join(a.shots, 'chat-desktop.png') });
  const layout = await dpage.evaluate(() => {
    const r = document.querySelector('#ask').getBoundingClientRect();
    return { composerBottom: Math.round(r.bottom), composerWidth: Math.round(r.width), scrollWidth: document.documentElement.scrollWidth };
  });
  // A picker gone stale (the policy changed since the page loaded): the guard's refusal is shown, the page stays usable.
  await dpage.evaluate(() => document.querySelector('#model').add(new Option('nomic-embed-text:latest', 'nomic-embed-text:latest')));
  await dpage.selectOption('#model', 'nomic-embed-text:latest');
  await dpage.fill('#prompt', 'a question for a model I may not use');
  await dpage.click('#send');
  await dpage.locator('#log .msg.error').waitFor({ timeout: 10_000 });
  const denied = { bubbles: await bubbles(dpage), sendEnabled: await dpage.isEnabled('#send') };
  await dctx.close();
  return { status: res.status(), headers, title, models, first, injected, stopped, stopDisabled, afterNew, third, layout, denied, errors: seen.errors, requests: seen.requests };
}

/** Another origin (a page served from this namespace) and a data: page try to make the browser, holding the certificate, call the guard. */
async function crossOriginScenario(browser, pass) {
  const evil = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>other site</title><p>other site</p>');
  });
  await new Promise((r) => evil.listen(0, '127.0.0.1', r));
  const evilUrl = `http://127.0.0.1:${evil.address().port}/`;
  const ctx = await browser.newContext({ ...PHONE, clientCertificates: [{ origin, pfxPath: a.p12, passphrase: pass }] });
  const page = await ctx.newPage();
  const body = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'driven by another site' }] });
  try {
    await page.goto(evilUrl);
    const fetches = await page.evaluate(async ({ guard, body }) => {
      const out = [];
      const attempt = async (what, p) => {
        try {
          const r = await p;
          out.push({ what, type: r.type, status: r.status });
        } catch (e) {
          out.push({ what, error: String(e.message) });
        }
      };
      // Simple requests: no preflight, so the browser sends them and only hides the answer.
      await attempt('no-cors POST /api/chat', fetch(guard + '/api/chat', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body }));
      await attempt('cors GET /api/tags', fetch(guard + '/api/tags'));
      await attempt('no-cors GET /api/tags with credentials', fetch(guard + '/api/tags', { mode: 'no-cors', credentials: 'include' }));
      return out;
    }, { guard: a.url, body });
    // A form that POSTs text/plain to the guard (top-level navigation, as a user's click would).
    await page.evaluate(({ guard, body }) => {
      const f = document.createElement('form');
      f.method = 'POST';
      f.action = guard + '/api/chat';
      f.enctype = 'text/plain';
      const i = document.createElement('input');
      i.name = 'x';
      i.value = body;
      f.appendChild(i);
      document.body.appendChild(f);
      f.submit();
    }, { guard: a.url, body });
    await page.waitForURL(a.url + '/api/chat', { timeout: 10_000 });
    const formAnswer = await page.evaluate(() => document.body.innerText);
    // A data: page (Origin null).
    await page.goto('data:text/html,<title>data page</title>');
    const dataFetch = await page.evaluate(async (guard) => {
      try {
        const r = await fetch(guard + '/api/generate', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{"model":"llama3.2","prompt":"x"}' });
        return { type: r.type };
      } catch (e) {
        return { error: String(e.message) };
      }
    }, a.url);
    return { fetches, formAnswer, dataFetch };
  } finally {
    await ctx.close();
    evil.close();
  }
}

/** No client certificate: Chromium connects to the guard itself, trusting only the guard's key. */
async function noCertScenario(browser) {
  const seen = { errors: [], requests: [] };
  const ctx = await browser.newContext({ ...PHONE });
  const page = await ctx.newPage();
  watch(page, seen);
  const res = await page.goto(a.url + '/');
  const out = { status: res.status(), headers: res.headers(), title: await page.title(), headings: await page.$$eval('h2', (h) => h.map((x) => x.textContent)) };
  await page.screenshot({ path: join(a.shots, 'help-phone.png'), fullPage: true });
  await ctx.close();
  return { ...out, errors: seen.errors };
}

/** Just open the page with the certificate: what the browser gets (the page, or Playwright's error page when its TLS client refuses the guard). */
async function openScenario(browser, pass) {
  const ctx = await browser.newContext({ ...PHONE, clientCertificates: [{ origin, pfxPath: a.p12, passphrase: pass }] });
  const page = await ctx.newPage();
  try {
    const res = await page.goto(a.url + '/');
    return { status: res.status(), title: await page.title(), text: await page.evaluate(() => document.body.innerText) };
  } finally {
    await ctx.close();
  }
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync',
    ...(a.spki ? [`--ignore-certificate-errors-spki-list=${a.spki}`] : []),
  ],
});
try {
  const pass = a.p12 ? readStdin() : '';
  const run = { chat: () => chatScenario(browser, pass), 'cross-origin': () => crossOriginScenario(browser, pass), 'no-cert': () => noCertScenario(browser), open: () => openScenario(browser, pass) }[a.scenario];
  if (!run) throw new Error(`unknown --scenario ${a.scenario}`);
  print({ ok: true, ...(await run()) });
} catch (e) {
  print({ ok: false, error: String(e?.stack ?? e) });
  process.exitCode = 1;
} finally {
  await browser.close();
}
