import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { refuseTunnel } from '../../../src/admin/protect.js';
import { parseCidr } from '../../../src/core/ipv4.js';
import { parseConnectProfile } from '../../../src/core/connect-profile.js';
import { connectorBundle } from '../../../src/connect/bundle.js';
import { auditRepository } from '../../../src/db/audit.js';
import { requestRepository } from '../../../src/db/requests.js';
import { startWebEnv, type WebEnv } from '../../support/web-env.js';

const dataUri = (body: string, id: string): Buffer => {
  const m = new RegExp(`id="${id}"[^>]*href="data:[^;]+(?:;charset=utf-8)?;base64,([A-Za-z0-9+/=]+)"`).exec(body);
  if (!m) throw new Error(`no ${id} on the page`);
  return Buffer.from(m[1]!, 'base64');
};
const unescape = (s: string): string => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');

describe('admin UI pages: peers, enrollment, policy, logs (HTTPS on loopback)', () => {
  let env: WebEnv;
  let s: { cookie: string; csrf: string };
  beforeAll(async () => {
    env = await startWebEnv();
    s = await env.session('alice', await env.addAdmin('alice'));
  });
  afterAll(() => env.close());
  const post = (path: string, form: Record<string, string> = {}) => env.http('POST', path, { cookie: s.cookie, form: { _csrf: s.csrf, ...form } });
  const get = (path: string) => env.http('GET', path, { cookie: s.cookie });

  test('creating a peer shows its config, QR code and downloads once; the private key is stored nowhere', async () => {
    const before = env.changes.n;
    const r = await post('/peers', { name: 'laptop1', expires: '30d' });
    expect(r.status).toBe(200);
    expect(r.headers['cache-control']).toBe('no-store');
    const conf = dataUri(r.body, 'download-conf').toString('utf8');
    expect(conf).toMatch(/^\[Interface\]\nPrivateKey = [A-Za-z0-9+/]{43}=\n/);
    expect(unescape(/<pre id="config">([\s\S]*?)<\/pre>/.exec(r.body)![1]!)).toBe(conf);
    expect(r.body).toMatch(/<figure class="qr" id="qr"><svg[^>]*>/);
    expect(dataUri(r.body, 'download-crt').toString()).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(dataUri(r.body, 'download-key').toString()).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(dataUri(r.body, 'download-p12').length).toBeGreaterThan(1000);
    expect(/id="p12-passphrase">([a-z2-9-]{24})</.exec(r.body)).not.toBeNull();
    expect(env.changes.n).toBe(before + 1);
    const privateKey = /PrivateKey = (\S+)/.exec(conf)![1]!;
    const certKey = dataUri(r.body, 'download-key').toString();
    // The peer's page and the database hold none of it.
    const page = await get('/peers/laptop1');
    expect(page.status).toBe(200);
    expect(page.body).not.toContain(privateKey);
    expect(page.body).not.toContain('PrivateKey');
    env.ctx.db.pragma('wal_checkpoint(TRUNCATE)');
    const dbBytes = readFileSync(env.config.paths.db).toString('latin1');
    expect(dbBytes).not.toContain(privateKey);
    expect(dbBytes).not.toContain(certKey.split('\n')[1]!);
    expect(auditRepository(env.ctx.db).list({ since: 0 }).find((a) => a.action === 'peer.add' && a.target === 'laptop1')).toMatchObject({ actor: 'alice', source: '127.0.0.1' });
  });

  test('bad form input is answered inline and creates nothing', async () => {
    const n = env.ctx.peers.list().length;
    for (const [name, expires, msg] of [
      ['Bad Name', '', 'lowercase'],
      ['<script>alert(1)</script>', '', 'may contain only'],
      ['ok-name', 'tomorrow', 'is not a duration'],
      ['', '', 'required'],
    ] as const) {
      const r = await post('/peers', { name, expires });
      expect(r.status, name).toBe(400);
      expect(r.body, name).toContain('class="error"');
      expect(r.body, name).toContain(msg);
      expect(r.body, name).not.toContain('<script>alert(1)</script>');
    }
    expect(env.ctx.peers.list().length).toBe(n);
  });

  test('the peers list filters, sorts and shows requests and tokens of today', async () => {
    await post('/peers', { name: 'phone2' });
    await post('/peers', { name: 'tablet3' });
    await post('/peers/tablet3/disable');
    const id = env.ctx.peers.show('phone2').id;
    requestRepository(env.ctx.db).insertBatch('local', [1, 2, 3].map((seq) => ({
      seq, at: Date.now(), peer: 'phone2', certSerial: env.ctx.peers.show('phone2').certificateSerial, source: '10.66.0.3', method: 'POST', path: '/api/chat', endpoint: 'chat',
      model: 'llama3.2:latest', promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 10, bytesOut: 10, promptTokens: 5, evalTokens: 7,
      ttfbMs: 1, durationMs: 2, refusal: null,
    })));
    expect(id).toBeGreaterThan(0);
    const all = await get('/peers');
    const rows = [...all.body.matchAll(/<tr data-peer="([^"]+)">([\s\S]*?)<\/tr>/g)].map((m) => ({ name: m[1], cells: [...m[2]!.matchAll(/<td>([\s\S]*?)<\/td>/g)].map((c) => c[1]!.replace(/<[^>]+>/g, '').trim()) }));
    expect(rows.map((r) => r.name)).toEqual(['laptop1', 'phone2', 'tablet3']);
    const phone = rows.find((r) => r.name === 'phone2')!;
    expect(phone.cells.slice(-2)).toEqual(['3', '36']);
    const disabled = await get('/peers?status=disabled');
    expect([...disabled.body.matchAll(/data-peer="([^"]+)"/g)].map((m) => m[1])).toEqual(['tablet3']);
    const search = await get('/peers?q=phone');
    expect([...search.body.matchAll(/data-peer="([^"]+)"/g)].map((m) => m[1])).toEqual(['phone2']);
    const byTokens = await get('/peers?sort=tokens&dir=desc');
    expect([...byTokens.body.matchAll(/data-peer="([^"]+)"/g)].map((m) => m[1])[0]).toBe('phone2');
    const bogus = await get('/peers?sort=%3Cscript%3E&status=%3Cb%3E');
    expect(bogus.status).toBe(200);
    expect(bogus.body).not.toContain('<b>');
  });

  test('disable, enable, rotate and revoke: a confirmation page first, then the change, in the audit log', async () => {
    await post('/peers', { name: 'worker4' });
    const confirm = await get('/peers/worker4/revoke');
    expect(confirm.status).toBe(200);
    expect(confirm.body).toContain('id="confirm"');
    expect(env.ctx.peers.show('worker4').status).toBe('active');
    expect((await post('/peers/worker4/disable')).status).toBe(303);
    expect(env.ctx.peers.show('worker4').status).toBe('disabled');
    expect((await post('/peers/worker4/enable', { expires: '7d' })).status).toBe(303);
    expect(env.ctx.peers.show('worker4')).toMatchObject({ status: 'active', expiresAt: expect.any(String) });
    const oldKey = env.ctx.peers.show('worker4').publicKey;
    expect((await get('/peers/worker4/rotate')).body).toContain(`name="replaces" value="${oldKey}"`);
    const stale = await post('/peers/worker4/rotate', { replaces: 'not-the-current-key' });
    expect(stale.status).toBe(409);
    expect(env.ctx.peers.show('worker4').publicKey).toBe(oldKey);
    const rotated = await post('/peers/worker4/rotate', { replaces: oldKey });
    expect(rotated.status).toBe(200);
    expect(dataUri(rotated.body, 'download-conf').toString()).toContain('PrivateKey = ');
    expect(env.ctx.peers.show('worker4').publicKey).not.toBe(oldKey);
    // The same form posted again (a reload of the answer page) rotates nothing.
    const newKey = env.ctx.peers.show('worker4').publicKey;
    expect((await post('/peers/worker4/rotate', { replaces: oldKey })).status).toBe(409);
    expect(env.ctx.peers.show('worker4').publicKey).toBe(newKey);
    const revoked = await post('/peers/worker4/revoke');
    expect(revoked.status).toBe(303);
    expect(revoked.headers.location).toBe('/peers/worker4?done=revoke');
    expect(env.ctx.peers.show('worker4').status).toBe('revoked');
    const actions = auditRepository(env.ctx.db).list({ since: 0 }).filter((a) => a.target === 'worker4').map((a) => `${a.action} ${a.actor}@${a.source}`);
    expect(actions).toEqual(['peer.add alice@127.0.0.1', 'peer.disable alice@127.0.0.1', 'peer.enable alice@127.0.0.1', 'peer.rotate alice@127.0.0.1', 'peer.revoke alice@127.0.0.1']);
    const audit = await get('/logs/audit?match=peer.revoke');
    expect(audit.body).toContain('peer.revoke');
    expect(audit.body).toContain('worker4');
    // A revoked peer offers no actions, and unknown actions or peers are 404.
    expect((await get('/peers/worker4')).body).not.toContain('/peers/worker4/revoke"');
    expect((await post('/peers/worker4/explode')).status).toBe(404);
    expect((await get('/peers/nobody')).status).toBe(404);
  });

  test('policy: the form changes only the fields edited; bad values are answered inline and change nothing', async () => {
    await post('/peers', { name: 'policy5' });
    const page = await get('/peers/policy5');
    const fields = Object.fromEntries([...page.body.matchAll(/<input name="([a-zA-Z]+)" value="([^"]*)"/g)].map((m) => [m[1]!, unescape(m[2]!)]));
    expect(fields).toHaveProperty('models');
    const r = await post('/peers/policy5/policy', { ...fields, models: 'llama3.2, qwen2.5:*', tokensPerDay: '5000', op: 'save' });
    expect(r.status).toBe(303);
    expect(env.ctx.peers.show('policy5').policy).toEqual({ models: ['llama3.2', 'qwen2.5:*'], tokensPerDay: 5000 });
    const bad = await post('/peers/policy5/policy', { ...fields, rate: 'fast', op: 'save' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('class="error"');
    expect(env.ctx.peers.show('policy5').policy).toEqual({ models: ['llama3.2', 'qwen2.5:*'], tokensPerDay: 5000 });
    expect((await post('/peers/policy5/policy', { op: 'reset' })).status).toBe(303);
    expect(env.ctx.peers.show('policy5').policy).toBeNull();
  });

  test('policy: the write allowlist has its own field, "none" by default', async () => {
    await post('/peers', { name: 'policy7' });
    const page = await get('/peers/policy7');
    const fields = Object.fromEntries([...page.body.matchAll(/<input name="([a-zA-Z]+)" value="([^"]*)"/g)].map((m) => [m[1]!, unescape(m[2]!)]));
    expect(fields.writeModels).toBe('none');
    expect((await post('/peers/policy7/policy', { ...fields, writeModels: 'policy7/*, llama3.2:mine', op: 'save' })).status).toBe(303);
    expect(env.ctx.peers.show('policy7').policy).toEqual({ writeModels: ['policy7/*', 'llama3.2:mine'] });
    const bad = await post('/peers/policy7/policy', { ...fields, writeModels: '../../x', op: 'save' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('writeModels');
    expect(env.ctx.peers.show('policy7').policy).toEqual({ writeModels: ['policy7/*', 'llama3.2:mine'] });
  });

  test('policy: Ollama options and their bounds from the form; an option Ollama does not have is answered inline', async () => {
    await post('/peers', { name: 'policy6' });
    const page = await get('/peers/policy6');
    const fields = Object.fromEntries([...page.body.matchAll(/<input name="([a-zA-Z]+)" value="([^"]*)"/g)].map((m) => [m[1]!, unescape(m[2]!)]));
    expect(fields.optionLimits).toBe('none');
    expect(fields.options).toMatch(/^num_keep, seed, .*, num_ctx$/);
    const r = await post('/peers/policy6/policy', { ...fields, options: `${fields.options}, num_batch`, optionLimits: 'num_batch=512', op: 'save' });
    expect(r.status).toBe(303);
    expect(env.ctx.peers.show('policy6').policy).toMatchObject({ options: expect.arrayContaining(['temperature', 'num_batch']), optionLimits: { num_batch: 512 } });
    const bad = await post('/peers/policy6/policy', { ...fields, options: 'temprature', op: 'save' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('unknown option &quot;temprature&quot;');
    expect(env.ctx.peers.show('policy6').policy).toMatchObject({ optionLimits: { num_batch: 512 } });
  });

  test('an enrollment link: 256-bit token, works once, then dead; expires; can be cancelled', async () => {
    const made = await post('/enroll', { name: 'staff6', expires: '90d' });
    expect(made.status).toBe(200);
    const url = /id="enroll-link">([^<]+)</.exec(made.body)![1]!;
    const token = new URL(url).pathname.split('/')[2]!;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(env.ctx.db.prepare('SELECT * FROM enrollments').all())).not.toContain(token);
    // Opening the link (no session) shows a confirmation; nothing is created by a GET (link previews).
    const open = await env.http('GET', `/e/${token}`);
    expect(open.status).toBe(200);
    expect(open.body).toContain('id="enroll-go"');
    expect(env.ctx.peers.list().some((p) => p.name === 'staff6')).toBe(false);
    const used = await env.http('POST', `/e/${token}`, { form: {} });
    expect(used.status).toBe(200);
    expect(dataUri(used.body, 'download-conf').toString()).toContain('PrivateKey = ');
    expect(env.ctx.peers.show('staff6')).toMatchObject({ status: 'active', expiresAt: expect.any(String) });
    for (const m of ['GET', 'POST']) {
      const again = await env.http(m, `/e/${token}`, m === 'POST' ? { form: {} } : {});
      expect(again.status, m).toBe(410);
      expect(again.body).toContain('This link does not work');
      expect(again.body).not.toContain('PrivateKey');
    }
    // A link not used within its lifetime (15 min) dies too.
    const late = /id="enroll-link">([^<]+)</.exec((await post('/enroll', { name: 'staff7' })).body)![1]!;
    env.now.ms += 16 * 60_000;
    expect((await env.http('POST', new URL(late).pathname, { form: {} })).status).toBe(410);
    expect(env.ctx.peers.list().some((p) => p.name === 'staff7')).toBe(false);
    // Cancelled links are dead.
    const c = /id="enroll-link">([^<]+)</.exec((await post('/enroll', { name: 'staff8' })).body)![1]!;
    const id = (env.ctx.db.prepare("SELECT id FROM enrollments WHERE peer_name = 'staff8'").pluck().get() as number);
    expect((await post(`/enroll/${id}/cancel`)).status).toBe(303);
    expect((await env.http('GET', new URL(c).pathname)).status).toBe(410);
    // Bad tokens are simply dead.
    for (const t of ['x', 'A'.repeat(43), '..%2f..%2fetc']) expect((await env.http('GET', `/e/${t}`)).status, t).toBe(410);
    // A name taken meanwhile fails at use and leaves the link usable (nothing half-done).
    const taken = /id="enroll-link">([^<]+)</.exec((await post('/enroll', { name: 'staff9' })).body)![1]!;
    await post('/peers', { name: 'staff9' });
    const clash = await env.http('POST', new URL(taken).pathname, { form: {} });
    expect(clash.status).toBe(409);
    expect(clash.body).toContain('already exists');
    expect(env.ctx.db.prepare("SELECT used_at FROM enrollments WHERE peer_name = 'staff9'").pluck().get()).toBeNull();
  });

  test('logs: filters, newest first, paging to older rows; client-chosen text is escaped', async () => {
    const serial = env.ctx.peers.show('phone2').certificateSerial;
    const rows = Array.from({ length: 60 }, (_, i) => ({
      seq: 100 + i, at: Date.now(), peer: 'phone2', certSerial: serial, source: '10.66.0.3', method: 'POST', path: i === 59 ? '/api/chat?<script>alert(1)</script>' : '/api/chat', endpoint: 'chat',
      model: i === 59 ? '<img src=x onerror=alert(1)>' : 'llama3.2', promptSha256: null, promptLength: null, promptText: null, status: i % 2 ? 200 : 429, bytesIn: 1, bytesOut: 1,
      promptTokens: null, evalTokens: null, ttfbMs: null, durationMs: 1, refusal: i % 2 ? null : 'rate_limited',
    }));
    requestRepository(env.ctx.db).insertBatch('local', rows);
    const page = await get('/logs/requests?peer=phone2');
    expect(page.status).toBe(200);
    expect(page.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(page.body).not.toContain('<img src=x');
    expect(page.body).not.toContain('<script>alert(1)');
    const body = page.body.slice(page.body.indexOf('<tbody>'));
    expect((body.match(/<tr>/g) ?? []).length).toBe(50);
    const older = /id="older" href="([^"]+)"/.exec(page.body)![1]!;
    const next = await get(unescape(older));
    expect((next.body.slice(next.body.indexOf('<tbody>')).match(/<tr>/g) ?? []).length).toBe(13);
    const limited = await get('/logs/requests?status=429');
    expect(limited.body).toContain('rate_limited');
    expect(limited.body).not.toMatch(/<td>200<\/td>/);
    const badFilter = await get('/logs/requests?since=yesterday');
    expect(badFilter.status).toBe(400);
    expect(badFilter.body).toContain('class="error"');
    expect((await get('/logs/connections?peer=phone2')).status).toBe(200);
    // The kernel is read (the fakes: closed firewall and barrier in place); no reconciler put the peers in the set.
    expect((await get('/status')).body).toContain('NOT in sync: ipv4 in sync, ipv6 in sync, tc barrier in place, 0 addresses allowed (differs from database)');
  });

  test('logs: control characters in client-chosen text are shown escaped, not passed to the page', async () => {
    const EVIL = 'x\n\x1b]8;;http://evil\x1b\\click\u202eevil\u2028';
    requestRepository(env.ctx.db).insertBatch('local', [{
      seq: 900, at: Date.now(), peer: null, certSerial: null, source: '10.66.0.3', method: 'POST', path: '/api/chat', endpoint: 'chat',
      model: EVIL, promptSha256: null, promptLength: null, promptText: null, status: 418, bytesIn: 1, bytesOut: 1,
      promptTokens: null, evalTokens: null, ttfbMs: null, durationMs: 1, refusal: null,
    }]);
    auditRepository(env.ctx.db).record({ actor: 'ctl-test', source: '192.0.2.1', action: 'admin.login.failed', target: EVIL }, Date.now());
    for (const path of ['/logs/requests?status=418', '/logs/audit?match=ctl-test']) {
      const page = await get(path);
      expect(page.status).toBe(200);
      const body = page.body.slice(page.body.indexOf('<tbody>'));
      expect(body).toContain('x\\x0a\\x1b]8;;http://evil\\x1b\\click\\u202eevil\\u2028');
      expect(body).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
    }
  });

  test('a request arriving on (or from) a tunnel address is refused before anything else', () => {
    const mw = refuseTunnel(parseCidr('10.66.0.0/24'));
    const run = (local: string, remote: string) => {
      let status = 0;
      let passed = false;
      const res = { status: (n: number) => ((status = n), res), type: () => res, send: () => res } as never;
      mw({ socket: { localAddress: local, remoteAddress: remote } } as never, res, () => void (passed = true));
      return { status, passed };
    };
    expect(run('10.66.0.1', '10.66.0.2')).toEqual({ status: 403, passed: false });
    expect(run('::ffff:10.66.0.1', '192.168.1.5')).toEqual({ status: 403, passed: false });
    expect(run('0.0.0.0', '10.66.0.7')).toEqual({ status: 403, passed: false });
    expect(run('127.0.0.1', '127.0.0.1')).toEqual({ status: 0, passed: true });
    expect(run('192.168.1.1', '192.168.1.5')).toEqual({ status: 0, passed: true });
  });

  test('the page hands out the connect profile and the connector, with the one command and the chat page address', async () => {
    const r = await post('/peers', { name: 'laptop9' });
    expect(r.status).toBe(200);
    const profile = parseConnectProfile(JSON.parse(dataUri(r.body, 'download-connect').toString('utf8')));
    expect(profile).toMatchObject({ peer: 'laptop9', guardUrl: 'https://192.168.1.10:11434' });
    expect(profile.certificate).toBe(dataUri(r.body, 'download-crt').toString());
    expect(profile.key).toBe(dataUri(r.body, 'download-key').toString());
    expect(unescape(/<pre id="connect-command">([^<]*)<\/pre>/.exec(r.body)![1]!)).toBe('node wg-ollama-connect.mjs laptop9.connect.json');
    expect(r.body).toContain('id="chat-url" href="https://192.168.1.10:11434/"');
    expect(/id="download-connector" download href="([^"]+)"/.exec(r.body)?.[1]).toBe('/downloads/wg-ollama-connect.mjs');
    // The connector is public (it holds no key): no session needed, the bytes npm run build made.
    const dl = await env.http('GET', '/downloads/wg-ollama-connect.mjs');
    expect(dl.status).toBe(200);
    expect(dl.headers['content-disposition']).toBe('attachment; filename=wg-ollama-connect.mjs');
    expect(dl.body).toBe(readFileSync(connectorBundle()!, 'utf8'));
  });
});
