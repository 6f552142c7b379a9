import { connect, type Socket } from 'node:net';
import { createResponseParser, type ResponseHead, type ResponseParser } from '../core/http-response.js';

/**
 * The guard's connections to Ollama: a pool of plain keep-alive TCP connections on which a
 * request, once its policy is decided, is written at once, whole, in one write (head and body
 * corked together), and whose answer is parsed for framing only (core/http-response.ts) and
 * handed over chunk by chunk.
 *
 * Why not an HTTP client library: after the decision the guard needs no client semantics (no
 * redirects, retries of its own choosing, decompression or body streams), and undici 7 holds
 * every write on a reused connection until the event loop's check phase (its idle-socket
 * validation): with 50 requests arriving together none went upstream before the last had been
 * decided (BENCHMARKS.md, issue 13). Here nothing waits.
 *
 * The caller bounds how many requests are in flight (guard/slots.ts), so there is one
 * connection per request in flight and no queue: a request takes an idle connection or opens
 * a new one.
 */

export interface UpstreamRequest {
  method: string;
  /** Origin-form target, already checked by the policy (no spaces or control characters). */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** No byte for this long before the response head, or between body bytes: the request fails. */
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

export interface UpstreamHandler {
  /** The request has a connection and is about to be written; `call.abort()` here sends nothing. */
  onStart(call: UpstreamCall): void;
  /** The request is handed to the socket, whole. */
  onWritten?(): void;
  onHead(status: number, headers: ResponseHead['headers']): void;
  onData(chunk: Buffer): void;
  onEnd(): void;
  /** Called at most once, and never after onEnd: connection failed, timed out, malformed answer or aborted. */
  onError(e: Error): void;
}

export interface UpstreamCall {
  /** Stops reading the answer (the client's socket is full); what one read delivered is still handed over. */
  pause(): void;
  resume(): void;
  /** Ends the request: the connection is closed (Ollama stops generating) and onError gets `e`. */
  abort(e: Error): void;
  readonly aborted: boolean;
}

export interface UpstreamOptions {
  /** http://host:port of Ollama. */
  origin: string;
  /** An idle connection is closed after this long. */
  keepAliveMs: number;
  /** At most this many idle connections are kept. */
  maxIdle: number;
  /** The response head may be at most this long. */
  maxHeadBytes?: number;
}

/** One TCP connection and the call it carries now (null while idle in the pool). */
interface Conn {
  socket: Socket;
  call: Call | null;
  /** It has carried a request before: a failure before any answer byte may be the server closing an idle connection. */
  used: boolean;
}

interface Call {
  data(buf: Buffer): void;
  eof(): void;
  closed(err: Error | null): void;
  timeout(): void;
}

const TARGET = /^\/[\x21-\x7e]*$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export function createUpstream(o: UpstreamOptions) {
  const url = new URL(o.origin);
  if (url.protocol !== 'http:') throw new Error(`upstream must be an http:// URL, not ${o.origin}`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 80);
  const hostHeader = url.host;
  const maxHeadBytes = o.maxHeadBytes ?? 64 * 1024;
  const idle: Conn[] = [];
  const all = new Set<Conn>();
  let closed = false;

  const open = (): Conn => {
    const socket = connect({ host, port, noDelay: true });
    const conn: Conn = { socket, call: null, used: false };
    all.add(conn);
    let error: Error | null = null;
    socket.on('data', (buf: Buffer) => (conn.call ? conn.call.data(buf) : socket.destroy()));
    socket.on('end', () => conn.call?.eof());
    socket.on('error', (e) => (error = e));
    socket.on('timeout', () => (conn.call ? conn.call.timeout() : socket.destroy()));
    socket.on('close', () => {
      all.delete(conn);
      const i = idle.indexOf(conn);
      if (i !== -1) idle.splice(i, 1);
      conn.call?.closed(error);
    });
    return conn;
  };

  const release = (conn: Conn, keepAlive: boolean): void => {
    conn.call = null;
    conn.used = true;
    if (!keepAlive || closed || idle.length >= o.maxIdle || conn.socket.destroyed) return void conn.socket.destroy();
    conn.socket.setTimeout(o.keepAliveMs);
    // A call that ended while its reading was paused leaves the socket paused; the next one must hear its answer.
    conn.socket.resume();
    idle.push(conn);
  };

  const take = (): Conn => {
    for (;;) {
      const conn = idle.pop();
      if (!conn) return open();
      if (!conn.socket.destroyed && conn.socket.readable) return conn;
    }
  };

  function request(r: UpstreamRequest, h: UpstreamHandler): UpstreamCall {
    let done = false;
    let aborted = false;
    let retried = false;
    let sawBytes = false;
    let conn: Conn | null = null;
    let parser: ResponseParser | null = null;
    const head = serialize(r, hostHeader);

    const fail = (e: Error): void => {
      if (done) return;
      done = true;
      if (conn) {
        conn.call = null;
        conn.socket.destroy();
      }
      h.onError(e);
    };
    const sink = {
      head(hd: ResponseHead): void {
        if (done) return;
        conn!.socket.setTimeout(r.bodyTimeoutMs);
        h.onHead(hd.status, hd.headers);
      },
      data(chunk: Buffer): void {
        if (!done) h.onData(chunk);
      },
      end(keepAlive: boolean): void {
        if (done) return;
        done = true;
        release(conn!, keepAlive);
        h.onEnd();
      },
    };
    const call: Call = {
      data(buf) {
        sawBytes = true;
        try {
          parser!.push(buf);
        } catch (e) {
          fail(e as Error);
        }
      },
      eof() {
        try {
          parser!.eof();
        } catch (e) {
          closedEarly(e as Error);
        }
      },
      closed(err) {
        if (!done) closedEarly(err ?? new Error('upstream closed the connection'));
      },
      timeout() {
        fail(new Error(parser?.done === false && sawBytes ? 'upstream body timeout' : 'upstream headers timeout'));
      },
    };
    /**
     * A reused connection that fails before any byte of the answer was most likely closed by
     * Ollama while idle, just as the request was written: the request is sent once more on a
     * new connection (as browsers do). Never once the answer has begun, and only once.
     */
    const closedEarly = (e: Error): void => {
      if (done) return;
      if (!sawBytes && conn?.used && !retried && !aborted && !closed) {
        retried = true;
        conn.call = null;
        conn.socket.destroy();
        return start(open());
      }
      fail(e);
    };
    const handle: UpstreamCall = {
      pause: () => conn?.socket.pause(),
      resume: () => conn?.socket.resume(),
      abort(e) {
        if (done) return;
        aborted = true;
        fail(e);
      },
      get aborted() {
        return aborted;
      },
    };
    const start = (c: Conn): void => {
      conn = c;
      c.call = call;
      parser = createResponseParser(sink, { maxHeadBytes, bodyless: r.method === 'HEAD' });
      c.socket.setTimeout(r.headersTimeoutMs);
      const s = c.socket;
      s.cork();
      s.write(head);
      if (r.body && r.body.length > 0) s.write(r.body);
      s.uncork();
      h.onWritten?.();
    };

    if (closed) {
      done = true;
      queueMicrotask(() => h.onError(new Error('upstream client closed')));
      return handle;
    }
    const c = take();
    h.onStart(handle);
    if (done) {
      // Aborted before a byte was written: the connection goes back untouched.
      release(c, true);
      return handle;
    }
    start(c);
    return handle;
  }

  return {
    request,
    /** Open connections, and how many of them are idle (for tests and metrics). */
    stats: (): { open: number; idle: number } => ({ open: all.size, idle: idle.length }),
    close(): Promise<void> {
      closed = true;
      const waits: Promise<void>[] = [];
      for (const c of all) {
        waits.push(new Promise((resolve) => (c.socket.destroyed ? resolve() : c.socket.once('close', () => resolve()))));
        c.socket.destroy();
      }
      idle.length = 0;
      return Promise.all(waits).then(() => undefined);
    },
  };
}

export type Upstream = ReturnType<typeof createUpstream>;

/** The request head as bytes; refuses a target or header value that would change its framing. */
function serialize(r: UpstreamRequest, host: string): Buffer {
  if (!TARGET.test(r.path)) throw new Error('request target not fit to forward');
  let s = `${r.method} ${r.path} HTTP/1.1\r\nhost: ${host}\r\nconnection: keep-alive\r\n`;
  for (const [k, v] of Object.entries(r.headers)) {
    if (!HEADER_VALUE.test(v)) continue;
    s += `${k}: ${v}\r\n`;
  }
  if (r.body) s += `content-length: ${r.body.length}\r\n`;
  else if (r.method === 'POST' || r.method === 'PUT' || r.method === 'PATCH') s += 'content-length: 0\r\n';
  return Buffer.from(`${s}\r\n`, 'latin1');
}
