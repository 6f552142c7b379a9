/**
 * The guard's chat page in Chromium through the real tunnel (two-box mode):
 * the phone's browser holds alice's .p12 and opens https://GPU:11434/, picks
 * a model from her filtered list, streams an answer whose text carries HTML
 * and a <script> (shown as text), stops one mid-stream, starts a new chat; a
 * page of another origin cannot make that browser call the guard (Ollama sees
 * nothing); without the certificate the help page appears; without the CA the
 * guard's server certificate is refused. Screenshots at phone and desktop
 * size go to test-artifacts/screenshots/.
 *
 * Chromium runs in the client namespace (c1): with clientCertificates,
 * Playwright's own Node process makes the TLS connection to the guard
 * (Chromium talks to Playwright's local proxy). That TLS client verifies the
 * guard's server certificate for real — no ignoreHTTPSErrors: it trusts the CA
 * that add-peer puts inside the .p12 (Node adds a PFX's CA certificates to the
 * context's trust store) or NODE_EXTRA_CA_CERTS=ca.crt, and the last test
 * shows that without either it refuses. Chromium without a client certificate
 * connects by itself and trusts exactly the guard's key
 * (--ignore-certificate-errors-spki-list with its SPKI hash).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, clientUp, waitFor } from './harness.js';
import { CLIENTS, GUARD_URL, addPeer, createGuardLab, parseCurl, requestLog, tlsCurl, type GuardLab, type Peer, type SimEvent } from './guard-harness.js';

const SHOTS = join(ROOT, 'test-artifacts', 'screenshots');
/** What the simulator answers: markup that would run if the page used innerHTML. */
const HOSTILE = '<b>bold</b><img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & more ';
const TOKENS = 40;
/** The simulator's answer text: HOSTILE four characters a token, repeated to TOKENS. */
const FULL = (() => {
  const pieces = HOSTILE.match(/[\s\S]{1,4}/gu)!;
  return Array.from({ length: TOKENS }, (_, i) => pieces[i % pieces.length]).join('');
})();
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

interface Bubble { kind: string; state: string | null; text: string; elements: number }
interface ChatRun {
  ok: boolean; error?: string; status: number; headers: Record<string, string>; title: string; models: string[];
  first: Bubble[]; injected: { pwned: unknown; title: string; elementsInLog: number }; stopped: Bubble[]; stopDisabled: boolean;
  afterNew: Bubble[]; third: Bubble[]; layout: { composerBottom: number; composerWidth: number; scrollWidth: number };
  denied: { bubbles: Bubble[]; sendEnabled: boolean };
  errors: string[]; requests: string[];
}
interface CrossRun { ok: boolean; error?: string; fetches: { what: string; type?: string; status?: number; error?: string }[]; formAnswer: string; dataFetch: { type?: string; error?: string } }
interface NoCertRun { ok: boolean; error?: string; status: number; headers: Record<string, string>; title: string; headings: string[]; errors: string[] }
interface OpenRun { ok: boolean; error?: string; status: number; title: string; text: string }

describe('guard: the chat page in Chromium through the tunnel', () => {
  let gl: GuardLab;
  let alice: Peer;
  let c1: string;
  let spki: string;
  const arrivals = (): SimEvent[] => gl.sim.events().filter((e) => e.event === 'request');

  /**
   * The browser driver in c1; the passphrase goes on standard input. `p12` defaults to the one add-peer wrote
   * (with ca.crt inside it); `extraCa` sets NODE_EXTRA_CA_CERTS for Playwright's TLS client.
   */
  async function browse<T>(scenario: string, o: { cert?: boolean; p12?: string; extraCa?: string } = {}): Promise<T> {
    const env = o.extraCa ? [`NODE_EXTRA_CA_CERTS=${o.extraCa}`] : ['-u', 'NODE_EXTRA_CA_CERTS'];
    const args = ['--scenario', scenario, '--url', GUARD_URL, '--shots', SHOTS, '--spki', spki, ...(o.cert === false ? [] : ['--p12', o.p12 ?? alice.p12])];
    const r = await gl.lab.exec(c1, 'env', [...env, 'node', join(CLIENTS, 'chat-browser.mjs'), ...args], { input: alice.p12Passphrase! + '\n', timeoutMs: 110_000 });
    const last = r.stdout.trim().split('\n').pop() ?? '';
    if (!last.startsWith('{')) throw new Error(`chat-browser.mjs printed no result (exit ${r.code}): ${r.stderr}`);
    const out = JSON.parse(last) as T & { ok: boolean; error?: string };
    if (!out.ok) throw new Error(`chat-browser.mjs ${scenario} failed: ${out.error}`);
    return out;
  }

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    gl = await createGuardLab('ch', { simArgs: ['--token-rate', '20', '--tokens', String(TOKENS), '--answer', HOSTILE] });
    alice = await addPeer(gl.lab, gl.gw, 'alice');
    await gl.waitPeers(1);
    await gl.change(() => gl.gw.cli('set-policy', 'alice', '--models', 'llama3.2,qwen2.5:*'));
    c1 = gl.lab.ns('c1');
    await clientUp(gl.lab, c1, 'wgchc1', alice.config);
    // Chromium without a client certificate trusts exactly the guard's key: its SPKI hash, from the certificate add-guard wrote.
    const guardCert = (JSON.parse(readFileSync(gl.guardConfig, 'utf8')) as { tls: { cert: string } }).tls.cert;
    const der = new X509Certificate(readFileSync(resolve(gl.guardDir, guardCert))).publicKey.export({ type: 'spki', format: 'der' });
    spki = createHash('sha256').update(der).digest('base64');
  }, 180_000);
  afterAll(async () => {
    await gl?.cleanup();
  });

  it('at phone size: the page loads with the CSP, the picker holds exactly the peer\'s models, answers stream as text, Stop stops Ollama, New chat clears', async () => {
    const before = arrivals().length;
    const r = await browse<ChatRun>('chat');
    expect(r.status).toBe(200);
    expect(r.headers['content-security-policy']).toBe(CSP);
    expect(r.title).toBe('wg-ollama chat');
    // The allowlist is llama3.2 and qwen2.5:*: nomic-embed-text, installed too, is not offered.
    expect(r.models).toEqual(['llama3.2:latest', 'qwen2.5:0.5b']);

    // The whole answer, as text: the markup is visible characters, nothing ran, no element was made.
    expect(r.first).toEqual([
      { kind: 'msg user', state: null, text: 'first question', elements: 0 },
      { kind: 'msg assistant', state: 'done', text: FULL, elements: 0 },
    ]);
    expect(r.injected).toEqual({ pwned: null, title: 'wg-ollama chat', elementsInLog: 0 });

    // Stopped after its first characters: partial text and a note; the stop button is off again.
    const stoppedAnswer = r.stopped[3]!;
    expect(stoppedAnswer).toMatchObject({ kind: 'msg assistant', state: 'stopped', elements: 1 });
    expect(stoppedAnswer.text.endsWith('stopped')).toBe(true);
    const partial = stoppedAnswer.text.slice(0, -'stopped'.length);
    expect(partial.length).toBeGreaterThan(0);
    expect(FULL.startsWith(partial) && partial.length < FULL.length).toBe(true);
    expect(r.stopDisabled).toBe(true);

    expect(r.afterNew).toEqual([]);
    expect(r.third.map((b) => [b.kind, b.state, b.text])).toEqual([['msg user', null, 'third question'], ['msg assistant', 'done', FULL]]);
    // A model outside the policy (a stale picker): the guard's refusal is shown as text, nothing reached Ollama.
    expect(r.denied.bubbles.slice(2).map((b) => [b.kind, b.text])).toEqual([
      ['msg user', 'a question for a model I may not use'], ['msg error', 'model "nomic-embed-text:latest" is not allowed for this peer (403)'],
    ]);
    expect(r.denied.sendEnabled).toBe(true);
    // No CSP violation, no script error; the one failed load is the refused chat.
    expect(r.errors).toEqual(['Failed to load resource: the server responded with a status of 403 (Forbidden)']);
    // Only the guard's own origin was asked for anything; no /favicon.ico.
    for (const q of r.requests) expect(q).toMatch(new RegExp(`^(GET|POST) ${GUARD_URL.replace(/\./g, '\\.')}/(|_wgo/(chat\\.js|chat\\.css|icon\\.svg)|api/(tags|chat))$`));
    // Desktop: the composer sits inside the window, nothing scrolls sideways.
    expect(r.layout.scrollWidth).toBeLessThanOrEqual(1280);
    expect(r.layout.composerBottom).toBeLessThanOrEqual(800);

    // What Ollama saw: the model picked, the conversation so far, the stopped request aborted, the new chat alone.
    await waitFor(() => gl.sim.events().filter((e) => e.event === 'end').length >= arrivals().length, 5000, 'every request to end');
    const chats = arrivals().slice(before).filter((e) => e.path === '/api/chat');
    expect(chats).toHaveLength(4);
    const messages = (e: SimEvent): unknown => (e.body as { messages: unknown }).messages;
    expect(chats.map((e) => (e.body as { model: string }).model)).toEqual(['qwen2.5:0.5b', 'qwen2.5:0.5b', 'qwen2.5:0.5b', 'llama3.2:latest']);
    expect(messages(chats[0]!)).toEqual([{ role: 'user', content: 'first question' }]);
    expect(messages(chats[1]!)).toEqual([
      { role: 'user', content: 'first question' }, { role: 'assistant', content: FULL }, { role: 'user', content: 'second question' },
    ]);
    expect(messages(chats[2]!)).toEqual([{ role: 'user', content: 'third question' }]);
    const ends = new Map(gl.sim.events().filter((e) => e.event === 'end').map((e) => [e.id, e]));
    expect(ends.get(chats[1]!.id)).toMatchObject({ aborted: true });
    expect(ends.get(chats[1]!.id)!.tokens!).toBeLessThan(TOKENS);
    expect(ends.get(chats[0]!.id)).toMatchObject({ aborted: false, tokens: TOKENS });
    // Origin and Fetch Metadata stay at the guard.
    expect(Object.keys(chats[0]!.headers ?? {}).filter((h) => h === 'origin' || h.startsWith('sec-fetch'))).toEqual([]);

    // The records at the gateway: page and files as endpoint "web", the chats as chat.
    let rows = await requestLog(gl.gw);
    await waitFor(async () => (rows = await requestLog(gl.gw)).filter((x) => x.endpoint === 'chat').length >= 4, 10_000, 'the records at the gateway');
    expect(rows.filter((x) => x.endpoint === 'web' && x.path === '/' && x.status === 200 && x.peer === 'alice').length).toBe(2);
    expect(rows.filter((x) => x.endpoint === 'web' && x.path === '/_wgo/chat.js').length).toBeGreaterThanOrEqual(1);
  });

  it('another origin (an http page, a form, a data: page) cannot drive the browser holding the certificate: Ollama sees nothing', async () => {
    const before = arrivals().length;
    const refusedBefore = (await requestLog(gl.gw)).filter((x) => x.refusal === 'cross_origin').length;
    const r = await browse<CrossRun>('cross-origin');
    expect(r.fetches.map((f) => f.what)).toEqual(['no-cors POST /api/chat', 'cors GET /api/tags', 'no-cors GET /api/tags with credentials']);
    expect(r.fetches[1]!.error).toMatch(/Failed to fetch/); // no CORS answer: the page reads nothing
    expect(r.formAnswer).toContain('requests from web pages are not accepted');
    // The requests did reach the guard, with the certificate, and were refused there.
    let rows = await requestLog(gl.gw);
    await waitFor(async () => (rows = await requestLog(gl.gw)).filter((x) => x.refusal === 'cross_origin').length >= refusedBefore + 5, 10_000, 'the refusals at the gateway');
    for (const x of rows.filter((y) => y.refusal === 'cross_origin')) expect(x).toMatchObject({ peer: 'alice', status: 403, source: alice.address });
    expect(arrivals().length).toBe(before);
  });

  it('without the certificate the browser gets the help page (401, HTML, CSP); screenshots at phone size', async () => {
    const before = arrivals().length;
    const r = await browse<NoCertRun>('no-cert', { cert: false });
    expect(r.status).toBe(401);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.headers['content-security-policy']).toBe(CSP);
    expect(r.title).toBe('wg-ollama: install your certificate');
    expect(r.headings).toEqual(['iPhone and iPad (Safari)', 'Android (Chrome)', 'macOS (Safari, Chrome, Edge)', 'Windows (Edge, Chrome)']);
    // The 401s (the page, and Chromium's own /favicon.ico on a resumed TLS session) are logged as failed loads;
    // nothing else: no CSP violation, and no connection lost (that resumption once made the guard exit).
    expect(r.errors.filter((e) => !/^Failed to load resource: the server responded with a status of 401\b/.test(e))).toEqual([]);
    expect((await gl.health()).ok).toBe(true);
    expect(arrivals().length).toBe(before);
  });

  it('curl with the .p12 as in the README: a navigation gets the page (curl asking for HTML does not); GET / and HEAD / without it still reach Ollama', async () => {
    const p12 = ['--cert-type', 'P12', '--cert', `${alice.p12}:${alice.p12Passphrase}`];
    const before = arrivals().length;
    // Exactly the README's command: the passphrase on curl's stdin (-K -), not on its command line.
    const page = parseCurl(await gl.lab.exec(c1, 'curl', ['-K', '-', '-s', '-S', '-i', '--cacert', alice.ca, '--cert-type', 'P12', '-H', 'Sec-Fetch-Mode: navigate', `${GUARD_URL}/`],
      { input: `cert = "${alice.p12}:${alice.p12Passphrase}"\n` }));
    expect(page.status, page.stderr).toBe(200);
    // (the lab's exec strips the final newline of curl's output)
    expect(page.body).toBe(readFileSync(join(ROOT, 'web/chat/index.html'), 'utf8').replace(/\n$/, ''));
    expect(page.headers['content-security-policy']).toBe(CSP);
    expect(arrivals().length).toBe(before);
    const api = await tlsCurl(gl.lab, c1, { ca: alice.ca }, '/', { extra: p12 });
    expect([api.status, api.body]).toEqual([200, 'Ollama is running']);
    // An API client that prefers HTML is no browser (Java's default Accept does this): it gets Ollama's answer too.
    const html = await tlsCurl(gl.lab, c1, { ca: alice.ca }, '/', { headers: ['Accept: text/html'], extra: p12 });
    expect([html.status, html.body]).toEqual([200, 'Ollama is running']);
    const head = await tlsCurl(gl.lab, c1, { ca: alice.ca }, '/', { extra: [...p12, '-I'] });
    expect(head.status).toBe(200);
    expect(arrivals().slice(before).map((e) => `${e.method} ${e.path}`)).toEqual(['GET /', 'GET /', 'HEAD /']);
    const noCert = await tlsCurl(gl.lab, c1, { ca: alice.ca }, '/');
    expect(noCert.status).toBe(401);
    expect(noCert.json()).toEqual({ error: 'client certificate required' });
  });

  it("the guard's server certificate is verified for real: a .p12 without the CA and no other trust gets Playwright's TLS error, the CA given separately opens the page", async () => {
    const before = arrivals().length;
    // The same certificate and key, re-packed without ca.crt (passphrases through the environment, not argv).
    const bare = join(gl.lab.dir, 'alice-no-ca.p12');
    const packed = await execa('openssl', ['pkcs12', '-export', '-in', alice.crt, '-inkey', alice.key, '-passout', 'env:P', '-out', bare], { env: { P: alice.p12Passphrase! }, reject: false });
    expect(packed.exitCode, packed.stderr).toBe(0);
    const refused = await browse<OpenRun>('open', { p12: bare });
    expect(refused.status, refused.text).toBe(503);
    expect(refused.text).toMatch(/client-certificate error: .*(unable to (get|verify)|local issuer|self[- ]signed)/i);
    expect(arrivals().length).toBe(before);
    const trusted = await browse<OpenRun>('open', { p12: bare, extraCa: alice.ca });
    expect(trusted.status, trusted.text).toBe(200);
    expect(trusted.title).toBe('wg-ollama chat');
  });
});
