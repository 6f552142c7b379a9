/**
 * The guard's connections to Ollama (src/guard/upstream.ts), against real TCP servers that
 * answer what each test needs: keep-alive reuse, a request written at once, the one retry on a
 * reused connection closed before answering, timeouts, refused framing, abort and close.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { Duplex } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, test } from 'vitest';
import { createUpstream, type Upstream, type UpstreamCall, type UpstreamRequest } from '../../../src/guard/upstream.js';
import { issueCertificate } from '../../../src/pki/ca.js';
import { testCa } from '../../support/ca.js';
import { waitFor } from '../../support/wait.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[]>;
  body: string;
}

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** A TCP server; `onRequest` gets each request head (and the socket) as it arrives. */
async function server(onRequest: (head: string, socket: Socket, nth: number) => void): Promise<{ port: number; connections: () => number; requests: string[] }> {
  let connections = 0;
  const requests: string[] = [];
  const srv: Server = createServer((socket) => {
    connections++;
    let buf = '';
    socket.on('error', () => undefined);
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        requests.push(buf.slice(0, end + 4 + len));
        buf = buf.slice(end + 4 + len);
        onRequest(head, socket, requests.length);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const sockets = new Set<Socket>();
  srv.on('connection', (s) => sockets.add(s));
  cleanup.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => srv.close(() => r()));
  });
  return { port: (srv.address() as { port: number }).port, connections: () => connections, requests };
}

function upstream(port: number, keepAliveMs = 30_000): Upstream {
  const u = createUpstream({ origin: `http://127.0.0.1:${port}`, keepAliveMs, maxIdle: 8, timerResolutionMs: 25 });
  cleanup.push(() => u.close());
  return u;
}

const GET: UpstreamRequest = { method: 'GET', path: '/api/version', headers: { accept: 'application/json' }, headersTimeoutMs: 2000, bodyTimeoutMs: 2000 };
const OK = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{"version":"0.13.0"}';

/** One request through `u`: its answer, or the error it ended with. */
function send(u: Upstream, r: UpstreamRequest = GET): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const a: Answer = { status: 0, headers: {}, body: '' };
    u.request(r, {
      onStart: () => undefined,
      onHead: (status, headers) => Object.assign(a, { status, headers }),
      onData: (c) => (a.body += c.toString()),
      onEnd: () => resolve(a),
      onError: reject,
    });
  });
}

describe('the guard’s upstream connections', () => {
  test('requests one after another share one kept-alive connection; the request is written as given', async () => {
    const s = await server((_, socket) => socket.write(OK));
    const u = upstream(s.port);
    for (let i = 0; i < 3; i++) expect(await send(u)).toEqual({ status: 200, headers: { 'content-type': 'application/json', 'content-length': '20' }, body: '{"version":"0.13.0"}' });
    expect(s.connections()).toBe(1);
    expect(u.stats()).toEqual({ open: 1, idle: 1 });
    await send(u, { ...GET, method: 'POST', path: '/api/embed', headers: { 'content-type': 'application/json' }, body: Buffer.from('{"model":"m"}') });
    expect(s.requests[3]).toBe(`POST /api/embed HTTP/1.1\r\nhost: 127.0.0.1:${s.port}\r\nconnection: keep-alive\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{"model":"m"}`);
  });

  test('a request on a kept-alive connection is on the wire before the event loop turns', async () => {
    // The server runs on its own thread, so it receives while this thread is busy.
    const worker = new Worker(
      `const net = require('node:net'); const { parentPort } = require('node:worker_threads');
       const srv = net.createServer((s) => s.on('data', (d) => { parentPort.postMessage(performance.timeOrigin + performance.now());
         s.write('HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok'); }));
       srv.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: srv.address().port }));`,
      { eval: true },
    );
    cleanup.push(() => worker.terminate().then(() => undefined));
    const arrivals: number[] = [];
    const port = await new Promise<number>((resolve) => worker.on('message', (m) => (typeof m === 'number' ? arrivals.push(m) : resolve(m.port))));
    const u = upstream(port);
    await send(u, GET);
    const answer = send(u, GET);
    const busyFrom = performance.timeOrigin + performance.now();
    while (performance.timeOrigin + performance.now() < busyFrom + 300); // this thread's event loop does not turn
    expect((await answer).status).toBe(200);
    await waitFor(() => arrivals.length === 2, 2000, 'the worker saw both requests');
    expect(arrivals[1]! - busyFrom).toBeLessThan(150);
  });

  test('a reused connection closed by the server before answering: the request is sent once more on a new one', async () => {
    const s = await server((_, socket, nth) => (nth === 2 ? socket.destroy() : socket.write(OK)));
    const u = upstream(s.port);
    await send(u);
    expect((await send(u)).status).toBe(200);
    expect(s.requests).toHaveLength(3);
    expect(s.connections()).toBe(2);
  });

  test('a POST on a reused connection that the server reads and then drops is not sent again: it may have acted on it', async () => {
    const s = await server((_, socket, nth) => (nth === 2 ? setTimeout(() => socket.destroy(), 50) : socket.write(OK)));
    const u = upstream(s.port);
    await send(u);
    await expect(send(u, { ...GET, method: 'POST', path: '/api/pull', headers: { 'content-type': 'application/json' }, body: Buffer.from('{"model":"m"}') })).rejects.toThrow('upstream closed the connection');
    expect(s.requests.map((q) => q.split(' ')[0])).toEqual(['GET', 'POST']);
  });

  test('the server’s Keep-Alive: timeout=N is honoured: the connection is closed by us before it would close it', async () => {
    const s = await server((_, socket) => socket.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=2\r\nContent-Length: 2\r\n\r\nok'));
    const u = upstream(s.port);
    await send(u);
    expect(u.stats().idle).toBe(1);
    // 2 s less the 1 s margin
    await waitFor(() => u.stats().open === 0, 1500, 'the idle connection closed after ~1 s');
    // and a server that says timeout=1 (or less) gets no reuse at all
    const s1 = await server((_, socket) => socket.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok'));
    const u1 = upstream(s1.port);
    await send(u1);
    await send(u1);
    expect(s1.connections()).toBe(2);
  });

  test('a connection not made within connectTimeoutMs fails the request', async () => {
    // A socket that stays "connecting" and never answers, as a host that drops SYNs would.
    const hanging = (): Socket => Object.assign(new Duplex({ read: () => undefined, write: (_c, _e, cb) => cb() }), { connecting: true, setNoDelay: () => undefined }) as unknown as Socket;
    const u = createUpstream({ origin: 'http://127.0.0.1:9', keepAliveMs: 30_000, maxIdle: 8, timerResolutionMs: 25, connectTimeoutMs: 100, dial: hanging });
    cleanup.push(() => u.close());
    const t0 = Date.now();
    await expect(send(u, { ...GET, headersTimeoutMs: 60_000 })).rejects.toThrow('upstream connect timeout');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  test('a finished call’s pause() does not stop the next request on its connection; a throwing onStart gives the connection back', async () => {
    const s = await server((_, socket) => socket.write(OK));
    const u = upstream(s.port);
    let first: UpstreamCall | null = null;
    await new Promise<void>((resolve, reject) => u.request(GET, { onStart: (c) => (first = c), onHead: () => undefined, onData: () => undefined, onEnd: resolve, onError: reject }));
    first!.pause();
    expect((await send(u)).status).toBe(200);
    expect(() => u.request(GET, { onStart: () => { throw new Error('bug'); }, onHead: () => undefined, onData: () => undefined, onEnd: () => undefined, onError: () => undefined })).toThrow('bug');
    expect(u.stats()).toEqual({ open: 1, idle: 1 });
    expect(s.connections()).toBe(1);
  });

  test('a new connection closed before answering is not retried, nor one whose answer had begun', async () => {
    const s = await server((_, socket, nth) => (nth === 1 ? socket.destroy() : socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal')));
    const u = upstream(s.port);
    await expect(send(u)).rejects.toThrow('upstream closed the connection');
    await expect(send(u)).rejects.toThrow('before the response ended');
    expect(s.requests).toHaveLength(2);
  });

  test('refused connection: the error names it', async () => {
    const s = await server(() => undefined);
    const port = s.port;
    await cleanup.pop()!();
    await expect(send(upstream(port))).rejects.toThrow(`connect ECONNREFUSED 127.0.0.1:${port}`);
  });

  test('no answer within headersTimeout, or a body that stops: the request fails and the connection is closed', async () => {
    const s = await server((_, socket, nth) => nth === 2 && socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal'));
    const u = upstream(s.port);
    const t0 = Date.now();
    await expect(send(u, { ...GET, headersTimeoutMs: 200 })).rejects.toThrow('upstream headers timeout');
    // never early, whatever the ticker's phase
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    await expect(send(u, { ...GET, bodyTimeoutMs: 200 })).rejects.toThrow('upstream body timeout');
    await waitFor(() => u.stats().open === 0, 1000, 'both connections closed');
  });

  test('no upstream timeout runs while the caller has paused reading (its client is slow)', async () => {
    const s = await server((_, socket) => {
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n');
      setTimeout(() => socket.write('0\r\n\r\n'), 340);
    });
    const u = upstream(s.port);
    let call: UpstreamCall | null = null;
    const outcome = await new Promise<string>((resolve) =>
      u.request({ ...GET, bodyTimeoutMs: 100 }, {
        onStart: (c) => (call = c),
        onHead: () => undefined,
        onData: () => {
          call!.pause();
          setTimeout(() => call!.resume(), 300);
        },
        onEnd: () => resolve('ended'),
        onError: (e) => resolve(e.message),
      }),
    );
    expect(outcome).toBe('ended');
  });

  test('a malformed answer is refused before its head is handed on, and its connection is not reused', async () => {
    const s = await server((_, socket, nth) => socket.write(nth === 1 ? 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok' : OK));
    const u = upstream(s.port);
    let heads = 0;
    await expect(
      new Promise((resolve, reject) => u.request(GET, { onStart: () => undefined, onHead: () => heads++, onData: () => undefined, onEnd: () => resolve(null), onError: reject })),
    ).rejects.toThrow('both Transfer-Encoding and Content-Length');
    expect(heads).toBe(0);
    expect((await send(u)).status).toBe(200);
    expect(s.connections()).toBe(2);
  });

  test('Connection: close, or bytes after the answer: the connection is not reused', async () => {
    const s = await server((_, socket, nth) => socket.write(nth === 1 ? 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok' : nth === 2 ? `${OK}HTTP/1.1 200 OK\r\n` : OK));
    const u = upstream(s.port);
    for (let i = 0; i < 3; i++) expect((await send(u)).status).toBe(200);
    expect(s.connections()).toBe(3);
  });

  test('an idle connection is closed after keepAliveMs', async () => {
    const s = await server((_, socket) => socket.write(OK));
    const u = upstream(s.port, 150);
    await send(u);
    expect(u.stats().idle).toBe(1);
    await waitFor(() => u.stats().open === 0, 1000, 'the idle connection closed');
  });

  test('abort mid-answer closes the connection (Ollama stops generating); abort in onStart sends nothing', async () => {
    let closedByClient = false;
    const s = await server((_, socket) => {
      socket.on('close', () => (closedByClient = true));
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n');
    });
    const u = upstream(s.port);
    let call: UpstreamCall | null = null;
    const err = await new Promise<Error>((resolve) =>
      u.request(GET, { onStart: (c) => (call = c), onHead: () => undefined, onData: () => call!.abort(new Error('client gone')), onEnd: () => resolve(new Error('ended')), onError: resolve }),
    );
    expect(err.message).toBe('client gone');
    await waitFor(() => closedByClient, 1000, 'the server saw the connection close');
    let errors = 0;
    u.request(GET, { onStart: (c) => c.abort(new Error('decided against it')), onHead: () => undefined, onData: () => undefined, onEnd: () => undefined, onError: () => errors++ });
    expect(errors).toBe(1);
    await new Promise((r) => setTimeout(r, 100));
    expect(s.requests).toHaveLength(1);
  });

  test('a header value that would break the head is dropped; a target with a space is refused', async () => {
    const s = await server((_, socket) => socket.write(OK));
    const u = upstream(s.port);
    await send(u, { ...GET, headers: { 'user-agent': 'evil\r\nx-injected: 1', accept: '*/*' } });
    expect(s.requests[0]).not.toContain('x-injected');
    expect(s.requests[0]).toContain('accept: */*');
    // refused through onError (request() never throws), and nothing is sent
    await expect(send(u, { ...GET, path: '/api/version HTTP/1.1\r\nx: y' })).rejects.toThrow('not fit to forward');
    expect(s.requests).toHaveLength(1);
  });

  test('close() ends what is in flight and refuses what comes after', async () => {
    const s = await server(() => undefined);
    const u = upstream(s.port);
    const pending = send(u);
    await waitFor(() => s.requests.length === 1, 1000, 'the request arrived');
    await u.close();
    await expect(pending).rejects.toThrow();
    await expect(send(u)).rejects.toThrow('upstream client closed');
    expect(u.stats().open).toBe(0);
  });

  describe('to another guard over mTLS (a pool member)', () => {
    /** A TLS server that wants a client certificate from the test CA and answers OK, saying whose it was. */
    async function member(): Promise<{ port: number; clients: string[] }> {
      const ca = testCa();
      const cert = issueCertificate(ca, { role: 'guard-server', commonName: 'gpu1', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 3600_000) });
      const clients: string[] = [];
      const srv = createTlsServer({ key: cert.keyPem, cert: cert.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (s: TLSSocket) => {
        clients.push(String(s.getPeerCertificate().subject?.CN));
        s.on('error', () => undefined);
        s.on('data', () => s.write(OK));
      });
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      cleanup.push(() => new Promise<void>((r) => srv.close(() => r())));
      return { port: (srv.address() as { port: number }).port, clients };
    }
    const client = issueCertificate(testCa(), { role: 'guard-client', commonName: 'router', notAfter: new Date(Date.now() + 3600_000) });

    test('presents its certificate, checks the member’s, and keeps the connection alive', async () => {
      const m = await member();
      const u = createUpstream({ origin: `https://127.0.0.1:${m.port}`, keepAliveMs: 30_000, maxIdle: 8, tls: { ca: testCa().certPem, cert: client.certPem, key: client.keyPem } });
      cleanup.push(() => u.close());
      expect((await send(u)).body).toBe('{"version":"0.13.0"}');
      expect((await send(u)).status).toBe(200);
      expect(m.clients).toEqual(['router']);
    });

    test('a member whose certificate is for another name is refused before the request is sent', async () => {
      const m = await member();
      const tls = { ca: testCa().certPem, cert: client.certPem, key: client.keyPem, servername: 'gpu2.wg-ollama.invalid' };
      const u = createUpstream({ origin: `https://127.0.0.1:${m.port}`, keepAliveMs: 30_000, maxIdle: 8, tls });
      cleanup.push(() => u.close());
      await expect(send(u)).rejects.toThrow(/altnames|does not match/);
    });

    test('https without tls options, or tls options for http, is refused when the pool is made', () => {
      expect(() => createUpstream({ origin: 'https://127.0.0.1:1', keepAliveMs: 1, maxIdle: 1 })).toThrow('needs tls options');
      expect(() => createUpstream({ origin: 'http://127.0.0.1:1', keepAliveMs: 1, maxIdle: 1, tls: { ca: '', cert: '', key: '' } })).toThrow('tls options given');
    });
  });
});
