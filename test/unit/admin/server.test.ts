import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { adminHosts, startAdminUi } from '../../../src/admin/server.js';
import type { ConfigInput } from '../../../src/config.js';
import { type GatewayContext } from '../../../src/gateway/context.js';
import { generateLeafKey } from '../../../src/gateway/ca-store.js';
import { createCa, issueCertificate } from '../../../src/pki/ca.js';
import { FakeFirewall } from '../../fakes/firewall.js';
import { FakeIngress } from '../../fakes/ingress.js';
import { FakeWireguard } from '../../fakes/wireguard.js';
import { testCa } from '../../support/ca.js';
import { gatewayState, type GatewayState } from '../../support/gateway-state.js';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
// The status page's sources: never read here (no page is asked for the status).
const wg = new FakeWireguard();
const status = { kernel: { wg, fw: new FakeFirewall(), tc: new FakeIngress((i) => wg.ifaces.has(i)) }, daemon: async () => ({ running: false }) };

describe('startAdminUi', () => {
  let dir: string;
  const contexts: GatewayContext[] = [];
  const states: GatewayState[] = [];
  const gateway = (admin: unknown): GatewayContext => {
    const state = gatewayState({ name: 'admin-server', config: { admin: admin as ConfigInput['admin'] } });
    states.push(state);
    const ctx = state.open();
    contexts.push(ctx);
    return ctx;
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wgo-admin-server-'));
    mkdirSync(join(dir, 'own'));
  });
  afterAll(() => {
    for (const c of contexts) c.close();
    for (const st of states) st.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('host names: localhost, each listen address (IPv6 in brackets) and admin.hosts, lowercase', () => {
    expect(adminHosts(['127.0.0.1:8443', '[::1]:8443', '192.168.1.1:8443'], ['Admin.Example.com']).sort()).toEqual(['127.0.0.1', '192.168.1.1', '[::1]', 'admin.example.com', 'localhost']);
  });

  test("serves the admin's own certificate when admin.tls names one", async () => {
    const own = createCa({ commonName: 'Company CA' });
    const key = generateLeafKey();
    const cert = issueCertificate(own, { role: 'gateway-server', commonName: 'admin', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 86_400_000), publicKeyPem: key.publicKeyPem });
    writeFileSync(join(dir, 'own', 'admin.crt'), cert.certPem);
    writeFileSync(join(dir, 'own', 'admin.key'), key.keyPem, { mode: 0o600 });
    const ctx = gateway({ listen: ['127.0.0.1:0'], tls: { cert: join(dir, 'own', 'admin.crt'), key: join(dir, 'own', 'admin.key') } });
    const ui = (await startAdminUi(ctx, { log: silent, onChange: () => undefined, ...status }))!;
    try {
      const port = ui.ports()[0]!;
      const trusting = new Agent({ connect: { ca: own.certPem } });
      const r = await request(`https://127.0.0.1:${port}/login`, { dispatcher: trusting });
      expect(r.statusCode).toBe(200);
      await r.body.text();
      await trusting.close();
      // The wg-ollama CA did not issue it.
      const wgo = new Agent({ connect: { ca: testCa().certPem } });
      await expect(request(`https://127.0.0.1:${port}/login`, { dispatcher: wgo })).rejects.toThrow(/certificate/i);
      await wgo.close();
    } finally {
      await ui.close();
    }
  });

  test('an unreadable admin.tls file or a taken port is a one-line error naming the setting', async () => {
    await expect(startAdminUi(gateway({ listen: ['127.0.0.1:0'], tls: { cert: join(dir, 'nope.crt'), key: join(dir, 'nope.key') } }), { log: silent, onChange: () => undefined, ...status }))
      .rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('admin.tls') });
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const taken = (blocker.address() as { port: number }).port;
    try {
      await expect(startAdminUi(gateway({ listen: ['127.0.0.1:0', `127.0.0.1:${taken}`] }), { log: silent, onChange: () => undefined, ...status }))
        .rejects.toMatchObject({ code: 'EXEC_FAILED', message: expect.stringMatching(/cannot listen on 127\.0\.0\.1:\d+ for the admin UI \(config admin\.listen\): the address is in use/) });
    } finally {
      blocker.close();
    }
  });

  test('admin null: no UI', async () => {
    expect(await startAdminUi(gateway(null), { log: silent, onChange: () => undefined, ...status })).toBeNull();
  });
});
