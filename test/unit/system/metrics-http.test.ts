import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { createMetricsServer, listen } from '../../../src/system/metrics-http.js';
import { expectWgoError } from '../../support/errors.js';

const servers: { close(): void }[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

describe('metrics listener', () => {
  test('/metrics in Prometheus text, /healthz 200 or 503, anything else 404 or 405', async () => {
    const registry = new Registry();
    new Counter({ name: 'wgo_test_total', help: 'a test counter', registers: [registry] }).inc(3);
    let ok = true;
    const server = createMetricsServer(registry, () => ({ ok, detail: 'x' }));
    servers.push(server);
    await listen(server, '127.0.0.1', 0);
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(await metrics.text()).toContain('wgo_test_total 3');
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ ok: true, detail: 'x' });
    ok = false;
    expect((await fetch(`${base}/healthz`)).status).toBe(503);
    expect((await fetch(`${base}/other`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  test('a port in use is a one-line error naming the address and the setting', async () => {
    const taken = createServer();
    servers.push(taken);
    await listen(taken, '127.0.0.1', 0);
    const port = (taken.address() as AddressInfo).port;
    const second = createServer();
    let caught: unknown;
    await listen(second, '127.0.0.1', port, 'metrics (config metricsListen)').catch((e: unknown) => (caught = e));
    const err = expectWgoError(() => {
      throw caught;
    }, 'EXEC_FAILED');
    expect(err.message).toBe(`cannot listen on 127.0.0.1:${port} for the metrics (config metricsListen): the address is in use`);
  });
});
