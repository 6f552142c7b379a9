import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectionRepository } from '../../../src/db/connections.js';
import { requestRepository } from '../../../src/db/requests.js';
import { startWebEnv, type WebEnv } from '../../support/web-env.js';

// The web pages read what the CLI reads, the same way (issue 11): each test
// here is a place where the two faces disagreed.

const WHO = { actor: 'root', source: 'cli' };
const ENDPOINT = '203.0.113.77:41641';

describe('admin UI reads agree with the CLI', () => {
  let env: WebEnv;
  let s: { cookie: string; csrf: string };
  beforeAll(async () => {
    // The interface is absent: the daemon's last reconcile said nothing about it.
    env = await startWebEnv({ interface: false });
    s = await env.session('alice', await env.addAdmin('alice'));
  });
  afterAll(() => env.close());
  const get = (path: string) => env.http('GET', path, { cookie: s.cookie });
  const tbody = (body: string): string => body.slice(body.indexOf('<tbody>'));

  test('the request log finds llama3.2 as llama3.2:latest (the form the guard records), as `logs requests --model` does', async () => {
    env.ctx.peers.add({ name: 'model1' }, WHO);
    const serial = env.ctx.peers.show('model1').certificateSerial;
    requestRepository(env.ctx.db).insertBatch('local', [{
      seq: 7001, at: env.now.ms, peer: 'model1', certSerial: serial, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
      model: 'llama3.2:latest', promptSha256: null, promptLength: null, promptText: null, status: 203, bytesIn: 1, bytesOut: 1,
      promptTokens: null, evalTokens: null, ttfbMs: null, durationMs: 1, refusal: null,
    }]);
    for (const model of ['llama3.2', 'LLAMA3.2', 'llama3.2:latest']) {
      const page = await get(`/logs/requests?model=${encodeURIComponent(model)}&status=203`);
      expect(page.status, model).toBe(200);
      expect(tbody(page.body), model).not.toContain('Nothing matches.');
      expect([...tbody(page.body).matchAll(/<td>llama3\.2:latest<\/td>/g)].length, model).toBe(1);
    }
  });

  test('the status page shows the pool’s GPU hosts as the router last reported them, as list-guards does; model names are escaped', async () => {
    expect((await get('/status')).body).not.toContain('GPU hosts of the pool');
    env.ctx.guards.add({ name: 'edge', address: '192.168.1.10', poolRole: 'router' }, WHO);
    env.ctx.guards.add({ name: 'gpu7', address: '192.168.1.27', poolRole: 'member', parallel: 2 }, WHO);
    env.ctx.guards.add({ name: 'gpu8', address: '192.168.1.28', poolRole: 'member' }, WHO);
    env.ctx.guards.setDraining('gpu8', true, WHO);
    const edge = env.ctx.guards.list().find((g) => g.name === 'edge')!;
    env.ctx.guards.report(edge, { hosts: [{ name: 'gpu7', health: 'healthy', draining: false, parallel: 2, inFlight: 1, queued: 3, models: ['<b>x</b>:latest', 'llama3.2:latest'], loaded: ['llama3.2:latest'] }], queued: 3 });
    const page = (await get('/status')).body;
    const hosts = page.slice(page.indexOf('GPU hosts of the pool'));
    expect(hosts).toMatch(/<td>gpu7<\/td><td class="good">healthy<\/td><td>no<\/td><td>1 \/ 2 in flight, 3 queued<\/td><td>&lt;b&gt;x&lt;\/b&gt;:latest, llama3\.2:latest \(loaded\)<\/td>/);
    expect(hosts).toMatch(/<td>gpu8<\/td><td class="bad">no report from the router<\/td><td>yes<\/td><td>parallel 4<\/td>/);
    expect(page).not.toContain('<b>x</b>');
    expect(page).toMatch(/<td>edge<\/td><td>192\.168\.1\.10<\/td><td>router<\/td>/);
    // The router stopped reporting 40 s ago: the last report is shown as such, not as health.
    env.ctx.db.prepare(`UPDATE guards SET pool_reported_at = pool_reported_at - 40000 WHERE name = 'gpu7'`).run();
    const later = (await get('/status')).body;
    expect(later).toMatch(/<td>gpu7<\/td><td class="bad">healthy, but the router has not reported since \(is it running\?\)<\/td>/);
  });

  test("after a rotation the old key's handshake and endpoint are not shown as the peer's (list and page)", async () => {
    env.ctx.peers.add({ name: 'rot1' }, WHO);
    const before = env.ctx.peers.show('rot1');
    const hs = Math.floor(Date.now() / 1000) - 30;
    connectionRepository(env.ctx.db).saveTick(Date.now(), [{
      peerId: before.id,
      state: { publicKey: before.publicKey, endpoint: ENDPOINT, latestHandshake: hs, connected: true, rxSeen: 0, txSeen: 0, rxPending: 0, txPending: 0, rxTotal: 1000, txTotal: 2000, trafficAt: Date.now() },
      events: [],
    }]);
    // While the key is current the link is the peer's.
    expect((await get('/peers/rot1')).body).toContain(ENDPOINT);
    env.ctx.peers.rotate('rot1', {}, WHO);
    const page = await get('/peers/rot1');
    expect(page.status).toBe(200);
    const facts = page.body.slice(page.body.indexOf('<dl class="facts">'), page.body.indexOf('</dl>'));
    expect(facts).not.toContain(ENDPOINT);
    expect(facts).toMatch(/<dt>Last handshake<\/dt><dd>never<\/dd>/);
    const list = await get('/peers');
    const row = /<tr data-peer="rot1">([\s\S]*?)<\/tr>/.exec(list.body)![1]!;
    expect(row).not.toContain(ENDPOINT);
  });

  test('the status page reads the kernel: an absent interface is shown absent, not guessed "up" from the reconcile errors', async () => {
    const page = await get('/status');
    expect(page.status).toBe(200);
    expect(page.body).not.toContain('wgo0: up');
    expect(page.body).toContain('wgo0: absent');
    await env.wg.create('wgo0', 'auto');
    await env.wg.addAddress('wgo0', '10.66.0.1/24');
    await env.wg.setUp('wgo0', false);
    expect((await get('/status')).body).toContain('wgo0: down');
    await env.wg.setUp('wgo0', true);
    expect((await get('/status')).body).toContain('wgo0: up');
  });

  test('an unknown peer in a log filter is a 404 with a clear message, not an empty log', async () => {
    for (const log of ['requests', 'connections']) {
      const page = await get(`/logs/${log}?peer=nobody`);
      expect(page.status, log).toBe(404);
      expect(page.body, log).toContain('no peer named &quot;nobody&quot;');
      expect(page.body, log).toContain('class="error"');
    }
  });

  test('a log page that fails for another reason (the database) is a 500 with a generic message, logged; bad filters stay 400', async () => {
    expect((await get('/logs/requests?since=yesterday')).status).toBe(400);
    expect((await get('/logs/audit?since=yesterday')).status).toBe(400);
    for (const [path, table] of [['/logs/requests', 'requests'], ['/logs/connections', 'connection_events'], ['/logs/audit', 'audit_log']] as const) {
      const logged = env.logged.length;
      env.ctx.db.exec(`ALTER TABLE ${table} RENAME TO ${table}_away`);
      try {
        const page = await get(path);
        expect(page.status, path).toBe(500);
        expect(page.body, path).not.toContain('no such table');
        expect(page.body, path).toContain('The error was logged.');
        expect(env.logged.length, path).toBe(logged + 1);
      } finally {
        env.ctx.db.exec(`ALTER TABLE ${table}_away RENAME TO ${table}`);
      }
      expect((await get(path)).status, path).toBe(200);
    }
  });
});
