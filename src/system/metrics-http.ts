import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { WgoError } from '../errors.js';

/**
 * Plain-HTTP /metrics (Prometheus text) and /healthz (JSON; 503 when not
 * healthy). Meant for loopback or a management network: it shows peer names.
 */
export function createMetricsServer(registry: Registry, health: () => { ok: boolean } & Record<string, unknown>): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' }).end(JSON.stringify({ error: 'method not allowed' }));
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(e.message),
      );
      return;
    }
    if (path === '/healthz') {
      let h: { ok: boolean } & Record<string, unknown>;
      try {
        h = health();
      } catch (e) {
        h = { ok: false, error: (e as Error).message };
      }
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(h));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
  });
}

/** Listens and resolves once bound; rejects with a one-line error naming what could not listen (and which setting moves it). */
export function listen(server: Server | import('node:https').Server, host: string, port: number, what = 'listener'): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (e: NodeJS.ErrnoException): void => {
      const why = e.code === 'EADDRINUSE' ? 'the address is in use' : e.code === 'EADDRNOTAVAIL' ? 'no interface has that address' : e.message;
      reject(new WgoError('EXEC_FAILED', `cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port} for the ${what}: ${why}`, { cause: e }));
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
}
