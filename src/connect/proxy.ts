import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { describeGuardFailure, hostAllowed, type ConnectListen } from '../core/connect.js';
import { isNavigation } from '../core/web-request.js';
import { closeableServer } from '../system/sockets.js';

/**
 * Request headers the connector does not pass on: hop-by-hop headers (this
 * hop's framing and connection), and local credentials that mean nothing to
 * the guard — the certificate is the identity, and an `Authorization` an
 * OpenAI client sends with its dummy API key must not leave the laptop.
 */
const DROP_REQUEST = new Set([
  'host', 'connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'authorization', 'cookie',
  // Node's server has answered 100-continue already; undici refuses to send it on.
  'expect',
]);
/** Response headers that belong to the guard's hop, not the client's. */
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'transfer-encoding', 'trailer', 'upgrade', 'proxy-authenticate']);

export interface ConnectorLog {
  warn(text: string): void;
}

export interface ConnectorOptions {
  /** https://IP:PORT of the guard. */
  guardUrl: string;
  tls: { ca: string; cert: string; key: string };
  listen: ConnectListen;
  /** Answer any Host header (a non-loopback listen the person asked for explicitly). */
  allowRemote: boolean;
  log: ConnectorLog;
  /** How long a TCP + TLS connection to the guard may take before the tunnel is called down. */
  connectTimeoutMs?: number;
}

/**
 * The local endpoint: a plain HTTP server (not yet listening) that forwards
 * every request, unchanged, to the guard over mTLS on a pooled keep-alive
 * client, and streams both ways chunk by chunk. It decides nothing about
 * LLM policy: the guard's answers and refusals come back as they are. Only
 * failures to reach the guard are its own, answered 502 in Ollama's
 * `{"error": "..."}` shape.
 */
export function createConnector(o: ConnectorOptions) {
  const guard = new Pool(o.guardUrl, {
    connect: { ca: o.tls.ca, cert: o.tls.cert, key: o.tls.key, minVersion: 'TLSv1.2', timeout: o.connectTimeoutMs ?? 5000 },
    connectTimeout: o.connectTimeoutMs ?? 5000,
    // The guard cuts a silent request after its idleTimeoutSec (300 s by default); wait a little longer
    // so that the guard's answer, not ours, is what the client sees.
    headersTimeout: 330_000,
    bodyTimeout: 330_000,
    keepAliveTimeout: 30_000,
  });

  // The port actually bound (a --listen port of 0 takes any), for the Host check.
  let listen = o.listen;
  const server: Server = createServer({ noDelay: true, keepAliveTimeout: 65_000 }, (req, res) => {
    if (!hostAllowed(req.headers.host, listen, o.allowRemote)) {
      // Ollama answers unknown hosts the same way: a page whose DNS name points at 127.0.0.1 gets nothing.
      return sendError(res, 403, `host "${req.headers.host ?? ''}" is not this connector (use http://${listen.text})`);
    }
    // A browser opening this address would get the guard's chat page, whose requests the guard
    // then refuses (its origin is not the guard's): say where the page is instead.
    if (req.url === '/' && isNavigation({ method: req.method ?? '', fetchMode: req.headers['sec-fetch-mode'], fetchDest: req.headers['sec-fetch-dest'], accept: req.headers.accept, userAgent: req.headers['user-agent'] })) {
      return sendText(res, browserNote(o.guardUrl, listen.text));
    }
    forward(req, res);
  });
  server.on('listening', () => {
    const port = (server.address() as AddressInfo).port;
    listen = { ...o.listen, port, text: o.listen.text.replace(/:\d+$/, `:${port}`) };
  });
  const closer = closeableServer(server);

  function forward(req: IncomingMessage, res: ServerResponse): void {
    // Origin-form only: `*` and absolute-form targets are no request for the guard (it would refuse them anyway).
    if (!req.url?.startsWith('/')) return sendError(res, 400, `request target "${(req.url ?? '').slice(0, 100)}" is not a path`);
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !DROP_REQUEST.has(k)) headers[k] = v;
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    // The body goes to the guard through a pipe of its own, so that when the guard answers before
    // reading all of it (a refusal), the rest can be read and dropped here: a client still
    // writing its body would otherwise wait for ever, and its connection with it.
    const body = hasBody ? new PassThrough() : null;
    if (body) req.pipe(body);
    const dropRest = (): void => {
      if (!body || req.complete) return;
      req.unpipe(body);
      body.destroy();
      req.resume();
    };
    let controller: Dispatcher.DispatchController | null = null;
    let clientGone = false;
    const onClose = (): void => {
      if (res.writableFinished) return;
      clientGone = true;
      // The guard sees its client leave and stops Ollama in turn.
      if (controller && !controller.aborted) controller.abort(new Error('client gone'));
    };
    const onDrain = (): void => controller?.resume();
    res.on('close', onClose);
    res.on('drain', onDrain);
    const done = (): void => {
      res.off('close', onClose);
      res.off('drain', onDrain);
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (clientGone) c.abort(new Error('client gone'));
      },
      onResponseStart(_c, status, upHeaders, statusMessage) {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(upHeaders)) if (v !== undefined && !DROP_RESPONSE.has(k)) out[k] = v;
        res.writeHead(status, statusMessage, out);
      },
      onResponseData(c, chunk) {
        if (!res.write(chunk)) c.pause();
      },
      onResponseEnd() {
        res.end();
        done();
        dropRest();
      },
      onResponseError(_c, e) {
        done();
        dropRest();
        if (clientGone) return;
        if ((e as NodeJS.ErrnoException).code === 'UND_ERR_INVALID_ARG') return sendError(res, 400, `cannot forward this request: ${e.message}`);
        if (!res.headersSent) {
          const text = describeGuardFailure(e as NodeJS.ErrnoException, o.guardUrl);
          o.log.warn(text);
          sendError(res, 502, text);
        } else {
          // The guard cut the answer (revoked, timed out, tunnel gone): cut the client's too, so it cannot take it for complete.
          res.destroy();
        }
      },
    };
    try {
      guard.dispatch(
        {
          origin: o.guardUrl,
          method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
          path: req.url ?? '/',
          headers,
          body,
        },
        handler,
      );
    } catch (e) {
      done();
      dropRest();
      sendError(res, 400, `cannot forward this request: ${(e as Error).message}`);
    }
  }

  return {
    server,
    async close(): Promise<void> {
      await Promise.all([closer.close(), guard.close().catch(() => undefined)]);
    },
  };
}

export type Connector = ReturnType<typeof createConnector>;

const browserNote = (guardUrl: string, local: string): string =>
  `This is wg-ollama connect: http://${local} is for Ollama and OpenAI clients on this computer ` +
  `(OpenAI-compatible base URL: http://${local}/v1).\n` +
  `The chat page is at ${guardUrl}/ : open it in a browser that has your .p12 certificate installed, with the WireGuard tunnel up.\n`;

function sendText(res: ServerResponse, text: string): void {
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, error: string): void {
  if (res.headersSent || res.destroyed) return void res.destroy();
  const body = JSON.stringify({ error });
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
