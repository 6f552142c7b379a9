/**
 * The API token in the admin UI over real HTTPS: the policy checkbox, issue
 * (confirmed, admin role, CSRF, shown once, only the hash stored), refusals,
 * revoke, and the Auth column of the request log.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { tokenHash } from '../../../src/core/api-token.js';
import { auditRepository } from '../../../src/db/audit.js';
import { requestRepository } from '../../../src/db/requests.js';
import { tokenRepository } from '../../../src/db/tokens.js';
import { startWebEnv, type WebEnv } from '../../support/web-env.js';

const WHO = { actor: 'root', source: 'cli' };

describe('admin UI: peer-bound API tokens', () => {
  let env: WebEnv;
  let s: { cookie: string; csrf: string };
  let viewer: { cookie: string; csrf: string };
  beforeAll(async () => {
    env = await startWebEnv();
    s = await env.session('alice', await env.addAdmin('alice'));
    viewer = await env.session('victor', await env.addAdmin('victor', 'viewer'));
    for (const name of ['webui', 'other']) env.ctx.peers.add({ name }, WHO);
  });
  afterAll(() => env.close());
  const post = (path: string, form: Record<string, string> = {}, who = s) => env.http('POST', path, { cookie: who.cookie, form: { _csrf: who.csrf, ...form } });
  const get = (path: string, who = s) => env.http('GET', path, { cookie: who.cookie });
  const stored = () => [...tokenRepository(env.ctx.db).byPeerId().values()];
  const dbBytes = (): Buffer => Buffer.concat(readdirSync(env.config.stateDir).filter((f) => f.includes('.db')).map((f) => readFileSync(join(env.config.stateDir, f))));

  test('off by default: the checkbox is unticked, there is no issue button, and a forged POST issues nothing', async () => {
    const page = await get('/peers/webui');
    expect(page.body).toMatch(/<input type="checkbox" name="apiTokens" id="api-tokens">/);
    expect(page.body).not.toContain('id="issue-token"');
    expect(page.body).toContain('The policy does not allow one.');
    const r = await post('/peers/webui/token');
    expect(r.status).toBe(409);
    expect(r.body).toContain('does not allow API tokens');
    expect(stored()).toEqual([]);
  });

  test('ticking the checkbox in the policy form allows tokens for that peer only (audited)', async () => {
    const page = await get('/peers/webui');
    // The form as shown, plus the ticked box: only apiTokens changes.
    const fields = Object.fromEntries([...page.body.matchAll(/<input name="([a-zA-Z]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!.replace(/&#39;/g, "'").replace(/&amp;/g, '&')]));
    const r = await post('/peers/webui/policy', { ...fields, apiTokens: 'on', op: 'save' });
    expect(r.status).toBe(303);
    expect(env.ctx.peers.show('webui').policy).toEqual({ apiTokens: true });
    expect(env.ctx.peers.show('other').policy).toBeNull();
    const after = await get('/peers/webui');
    expect(after.body).toMatch(/name="apiTokens" id="api-tokens" checked>/);
    expect(after.body).toContain('id="issue-token"');
  });

  test('viewers see no button and are refused; a POST without the CSRF token is refused; nothing is issued', async () => {
    expect((await get('/peers/webui', viewer)).body).not.toContain('id="issue-token"');
    expect((await post('/peers/webui/token', {}, viewer)).status).toBe(403);
    const noCsrf = await env.http('POST', '/peers/webui/token', { cookie: s.cookie, form: {} });
    expect(noCsrf.status).toBe(403);
    expect(stored()).toEqual([]);
  });

  test('issue: a confirmation first, then the token shown once; only its hash is stored; the peer page never shows it', async () => {
    const confirm = await get('/peers/webui/token');
    expect(confirm.status).toBe(200);
    expect(confirm.body).toContain('action="/peers/webui/token"');
    expect(confirm.body).toContain(`name="_csrf" value="${s.csrf}"`);
    expect(stored()).toEqual([]);
    const before = env.changes.n;
    const r = await post('/peers/webui/token');
    expect(r.status).toBe(200);
    expect(r.headers['cache-control']).toBe('no-store');
    const token = /id="api-token">(wgo_[A-Za-z0-9_-]{43})</.exec(r.body)?.[1];
    expect(token).toBeDefined();
    expect(r.body).toContain('Shown only once');
    expect(env.changes.n).toBe(before + 1);
    expect(stored().map((t) => t.tokenSha256)).toEqual([tokenHash(token!)]);
    expect(dbBytes().includes(Buffer.from(token!.slice(4)))).toBe(false);
    const page = await get('/peers/webui');
    expect(page.body).not.toContain(token!);
    expect(page.body).toContain('is in force');
    const audit = auditRepository(env.ctx.db).list({ since: 0 }).filter((a) => a.action === 'peer.token.issue');
    expect(audit).toMatchObject([{ actor: 'alice', target: 'webui' }]);
  });

  test('revoke: confirmed, then gone', async () => {
    expect((await get('/peers/webui/token/revoke')).body).toContain('action="/peers/webui/token/revoke"');
    const r = await post('/peers/webui/token/revoke');
    expect(r.status).toBe(303);
    expect(r.headers.location).toBe('/peers/webui?done=token-revoked');
    expect(stored()).toEqual([]);
    expect((await get('/peers/webui?done=token-revoked')).body).toContain('API token revoked.');
  });

  test('the request log shows how each request authenticated', async () => {
    const serial = env.ctx.peers.show('webui').certificateSerial!;
    const base = { at: env.now.ms, peer: 'webui', certSerial: serial, source: '10.66.0.2', method: 'GET', path: '/api/version', endpoint: 'version', model: null, promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 0, bytesOut: 5, promptTokens: null, evalTokens: null, ttfbMs: 1, durationMs: 1, refusal: null };
    requestRepository(env.ctx.db).insertBatch('gpu1', [{ ...base, seq: 1, auth: 'token' }, { ...base, seq: 2, auth: 'certificate' }]);
    const page = await get('/logs/requests');
    expect(page.body).toContain('<th>Auth</th>');
    expect(page.body).toMatch(/<td>10\.66\.0\.2<\/td><td>token<\/td>/);
    expect(page.body).toMatch(/<td>10\.66\.0\.2<\/td><td>certificate<\/td>/);
  });
});
