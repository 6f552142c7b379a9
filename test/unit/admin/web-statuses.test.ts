import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startWebEnv, type WebEnv } from '../../support/web-env.js';

/**
 * The status of each page that reports a refusal follows the kind of the
 * error: a clash with the current state is 409, not the 400 of a bad value;
 * something missing that may come back is 503, not 500.
 */
describe('admin UI: the HTTP status follows the kind of the error', () => {
  let env: WebEnv;
  let s: { cookie: string; csrf: string };
  beforeAll(async () => {
    // A /29 holds five peers (.2 to .6).
    env = await startWebEnv({ subnet: '10.66.0.0/29' });
    s = await env.session('alice', await env.addAdmin('alice'));
  });
  afterAll(() => env.close());
  const post = (path: string, form: Record<string, string> = {}) => env.http('POST', path, { cookie: s.cookie, form: { _csrf: s.csrf, ...form } });

  test('a peer name taken already: 409, the form again with the message, nothing created', async () => {
    expect((await post('/peers', { name: 'laptop1' })).status).toBe(200);
    const n = env.ctx.peers.list().length;
    const r = await post('/peers', { name: 'laptop1', expires: '30d' });
    expect(r.status).toBe(409);
    expect(r.body).toContain('class="error"');
    expect(r.body).toContain('a peer named &quot;laptop1&quot; already exists');
    expect(r.body).toMatch(/<input[^>]*name="expires"[^>]*value="30d"/);
    expect(env.ctx.peers.list().length).toBe(n);
  });

  test('an enrollment link for a name taken, or a second open link: 409 with the message; a bad value stays 400', async () => {
    const taken = await post('/enroll', { name: 'laptop1' });
    expect(taken.status).toBe(409);
    expect(taken.body).toContain('a peer named laptop1 exists already');
    expect((await post('/enroll', { name: 'staff1' })).status).toBe(200);
    const twice = await post('/enroll', { name: 'staff1' });
    expect(twice.status).toBe(409);
    expect(twice.body).toContain('an open enrollment link for staff1 exists already');
    expect((await post('/enroll', { name: 'Bad Name' })).status).toBe(400);
  });

  test('the policy of a revoked peer: 409 with the message; a bad value stays 400', async () => {
    await post('/peers', { name: 'gone2' });
    expect((await post('/peers/gone2/policy', { rate: 'fast', op: 'save' })).status).toBe(400);
    expect((await post('/peers/gone2/revoke')).status).toBe(303);
    const r = await post('/peers/gone2/policy', { op: 'reset' });
    expect(r.status).toBe(409);
    expect(r.body).toContain('class="error"');
    expect(r.body).toContain('is revoked');
  });

  test('no free address left: 503 with the message, not 500', async () => {
    // Fill the pool (at most five more peers fit; a revoked peer's address is not given again at once).
    for (let i = 0; i < 6; i++) if ((await post('/peers', { name: `fill${i}` })).status !== 200) break;
    const r = await post('/peers', { name: 'onemore' });
    expect(r.status).toBe(503);
    expect(r.body).toContain('no free address left in 10.66.0.0/29');
    expect(env.ctx.peers.list().some((p) => p.name === 'onemore')).toBe(false);
  });
});
