import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext } from 'node:tls';
import { createResponseParser, ResponseFramingError, type ResponseHead, type ResponseParser, type ResponseSink } from '../core/http-response.js';

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
  /**
   * Stops reading the answer (the client's socket is full); what one read delivered is still
   * handed over. No upstream timeout runs while paused: the caller watches its slow client.
   */
  pause(): void;
  resume(): void;
  /** Ends the request: the connection is closed (Ollama stops generating) and onError gets `e`. */
  abort(e: Error): void;
  readonly aborted: boolean;
}

export interface UpstreamOptions {
  /** http://host:port of Ollama; https://host:port of another guard (a pool member), with `tls`. */
  origin: string;
  /**
   * For an https:// origin: the CA its certificate must chain to (verified by OpenSSL, host
   * name or IP checked as usual), and the client certificate to present.
   */
  tls?: { ca: string; cert: string; key: string; servername?: string };
  /** An idle connection is closed after this long. */
  keepAliveMs: number;
  /** At most this many idle connections are kept. */
  maxIdle: number;
  /** The response head may be at most this long. */
  maxHeadBytes?: number;
  /**
   * How often timeouts are checked (default 500 ms): a timeout fires after its limit, and at
   * most this much later. One shared timer instead of one per request, re-armed on every read.
   */
  timerResolutionMs?: number;
  /** A connection not made within this long fails (default 10 s, as undici's). */
  connectTimeoutMs?: number;
  /** Opens the connection (tests: a socket that never connects); default: TCP, or TLS with `tls`. */
  dial?: () => Socket;
}

/**
 * Methods sent once more when a reused connection fails before any byte of the answer: only
 * those without side effects (RFC 9110 §9.2.2). A POST the server may already have acted on
 * (a generation, a pull, a delete) is never sent twice; it fails with a 503 instead.
 */
const RETRYABLE = new Set(['GET', 'HEAD']);
/** At most this many interim (1xx) answers before the real one. */
const MAX_INTERIM = 8;
/** A server's Keep-Alive: timeout=N is trusted minus this margin, so we never reuse a connection it is closing. */
const KEEP_ALIVE_MARGIN_MS = 1000;

const TARGET = /^\/[\x21-\x7e]*$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export function createUpstream(o: UpstreamOptions) {
  const url = new URL(o.origin);
  const secure = url.protocol === 'https:';
  if (!secure && url.protocol !== 'http:') throw new Error(`upstream must be an http:// or https:// URL, not ${o.origin}`);
  if (secure !== (o.tls !== undefined)) throw new Error(secure ? `an https:// upstream needs tls options: ${o.origin}` : `tls options given for an http:// upstream: ${o.origin}`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (secure ? 443 : 80));
  // The TLS material is read once, here: bad PEM fails when the pool is made, not per connection.
  const secureContext = o.tls ? createSecureContext({ ca: o.tls.ca, cert: o.tls.cert, key: o.tls.key, minVersion: 'TLSv1.2' }) : null;
  const dial =
    o.dial ??
    ((): Socket => {
      if (!secureContext) return connect({ host, port, noDelay: true });
      const s = tlsConnect({ host, port, secureContext, ALPNProtocols: ['http/1.1'], ...(o.tls?.servername ? { servername: o.tls.servername } : {}) });
      s.setNoDelay(true);
      return s;
    });
  const connectTimeoutMs = o.connectTimeoutMs ?? 10_000;
  const hostHeader = url.host;
  const maxHeadBytes = o.maxHeadBytes ?? 64 * 1024;
  const tickMs = o.timerResolutionMs ?? 500;
  const idle: Conn[] = [];
  const all = new Set<Conn>();
  let closed = false;
  /** A coarse clock (ms) advanced by the ticker: what reads stamp, and timeouts compare against. */
  let now = 0;
  let ticker: NodeJS.Timeout | null = null;

  const tick = (): void => {
    now += tickMs;
    for (const c of all) {
      // `seen` may lag real time by up to a tick, so "more than the limit" on this clock is at least the limit in real time.
      const limit = c.socket.connecting ? Math.min(connectTimeoutMs, c.call?.timeoutMs() ?? connectTimeoutMs) : c.call ? c.call.timeoutMs() : c.keepAliveMs;
      if (now - c.seen <= limit || c.call?.paused) continue;
      if (c.call) c.call.timeout(c.socket.connecting);
      else c.socket.destroy();
    }
    if (all.size === 0 && ticker) {
      clearInterval(ticker);
      ticker = null;
    }
  };

  /** One TCP connection, its parser, and the call it carries now (null while idle in the pool). */
  class Conn implements ResponseSink {
    readonly socket: Socket;
    call: Call | null = null;
    /** It has carried a request before: a failure before any answer byte may be the server closing an idle connection. */
    used = false;
    seen = now;
    error: Error | null = null;
    /** How long it may stay idle: ours, or less when the server said so (Keep-Alive: timeout=N). */
    keepAliveMs = o.keepAliveMs;
    readonly parser: ResponseParser;

    constructor() {
      this.parser = createResponseParser(this, { maxHeadBytes, bodyless: false });
      const socket = (this.socket = dial());
      all.add(this);
      ticker ??= setInterval(tick, tickMs).unref();
      socket.on('data', (buf: Buffer) => {
        this.seen = now;
        if (this.call) this.call.read(buf);
        else socket.destroy();
      });
      socket.on('end', () => this.call?.eof());
      socket.on('error', (e) => (this.error = e));
      socket.on('close', () => {
        all.delete(this);
        const i = idle.indexOf(this);
        if (i !== -1) idle.splice(i, 1);
        this.call?.closed(this.error);
      });
    }

    head(h: ResponseHead): void {
      const ka = h.headers['keep-alive'];
      const m = typeof ka === 'string' ? /(?:^|[\s,;])timeout\s*=\s*(\d+)/i.exec(ka) : null;
      if (m) this.keepAliveMs = Math.min(o.keepAliveMs, Number(m[1]) * 1000 - KEEP_ALIVE_MARGIN_MS);
      this.call?.head(h);
    }
    data(chunk: Buffer): void {
      this.call?.data(chunk);
    }
    interim(): void {
      this.call?.interim();
    }
    end(keepAlive: boolean): void {
      this.call?.end(keepAlive);
    }

    /** Back to the pool after a complete answer, or closed. */
    release(keepAlive: boolean): void {
      this.call = null;
      this.used = true;
      if (!keepAlive || closed || idle.length >= o.maxIdle || this.socket.destroyed || this.keepAliveMs <= 0) return void this.socket.destroy();
      this.seen = now;
      // A call that ended while its reading was paused leaves the socket paused; the next one must hear its answer.
      this.socket.resume();
      idle.push(this);
    }
  }

  const take = (): Conn => {
    for (;;) {
      const conn = idle.pop();
      if (!conn) return new Conn();
      if (!conn.socket.destroyed && conn.socket.readable) return conn;
    }
  };

  /** One request from being handed a connection to its answer's end or its error. */
  class Call implements UpstreamCall {
    private done = false;
    private _aborted = false;
    private retried = false;
    private interims = 0;
    private sawBytes = false;
    private sawHead = false;
    private conn: Conn | null = null;
    /** Reading stopped by the caller (its client is slow): no upstream timeout runs meanwhile, the caller has its own. */
    paused = false;

    constructor(
      private readonly r: UpstreamRequest,
      private readonly h: UpstreamHandler,
      private readonly headText: string,
    ) {}

    get aborted(): boolean {
      return this._aborted;
    }
    // Once the call is over its connection may carry another request: pause and resume no longer touch it.
    pause(): void {
      if (this.done || !this.conn) return;
      this.paused = true;
      this.conn.socket.pause();
    }
    resume(): void {
      if (this.done || !this.conn) return;
      this.paused = false;
      this.conn.seen = now;
      this.conn.socket.resume();
    }
    abort(e: Error): void {
      if (this.done) return;
      this._aborted = true;
      this.fail(e);
    }

    start(c: Conn): void {
      this.conn = c;
      c.call = this;
      c.parser.reset(this.r.method === 'HEAD');
      c.seen = now;
      const s = c.socket;
      const body = this.r.body;
      if (body && body.length > 0) {
        s.cork();
        s.write(this.headText, 'latin1');
        s.write(body);
        s.uncork();
      } else s.write(this.headText, 'latin1');
      this.h.onWritten?.();
    }
    timeoutMs(): number {
      return this.sawHead ? this.r.bodyTimeoutMs : this.r.headersTimeoutMs;
    }

    // From the connection.
    read(buf: Buffer): void {
      this.sawBytes = true;
      try {
        this.conn!.parser.push(buf);
      } catch (e) {
        // A malformed answer fails the call; anything else is a bug in a handler and is not hidden.
        if (e instanceof ResponseFramingError || !this.done) this.fail(e as Error);
        else throw e;
      }
    }
    eof(): void {
      try {
        this.conn!.parser.eof();
      } catch (e) {
        this.closedEarly(e as Error);
      }
    }
    closed(err: Error | null): void {
      if (!this.done) this.closedEarly(err ?? new Error('upstream closed the connection'));
    }
    timeout(connecting: boolean): void {
      this.fail(new Error(connecting ? 'upstream connect timeout' : this.sawHead ? 'upstream body timeout' : 'upstream headers timeout'));
    }

    // From the parser.
    head(hd: ResponseHead): void {
      if (this.done) return;
      this.sawHead = true;
      this.h.onHead(hd.status, hd.headers);
    }
    interim(): void {
      if (++this.interims > MAX_INTERIM) this.fail(new ResponseFramingError(`more than ${MAX_INTERIM} interim (1xx) answers`));
    }
    data(chunk: Buffer): void {
      if (!this.done) this.h.onData(chunk);
    }
    end(keepAlive: boolean): void {
      if (this.done) return;
      this.done = true;
      const c = this.conn!;
      this.conn = null;
      c.release(keepAlive);
      this.h.onEnd();
    }

    fail(e: Error): void {
      if (this.done) return;
      this.done = true;
      if (this.conn) {
        this.conn.call = null;
        this.conn.socket.destroy();
        this.conn = null;
      }
      this.h.onError(e);
    }
    /**
     * A reused connection that fails before any byte of the answer was most likely closed by
     * the server while idle, just as the request was written: a GET or HEAD is sent once more
     * on a new connection. Never another method (the server may have acted on it), never once
     * the answer has begun, and only once.
     */
    private closedEarly(e: Error): void {
      if (this.done) return;
      const c = this.conn;
      if (!this.sawBytes && c?.used && RETRYABLE.has(this.r.method) && !this.retried && !this._aborted && !closed) {
        this.retried = true;
        c.call = null;
        c.socket.destroy();
        return this.start(new Conn());
      }
      this.fail(e);
    }

    /** Before start: aborted while being handed its connection (onStart). */
    get finished(): boolean {
      return this.done;
    }
  }

  /** Sends a request; never throws: whatever goes wrong reaches `h.onError`, once. */
  function request(r: UpstreamRequest, h: UpstreamHandler): UpstreamCall {
    const head = serialize(r, hostHeader);
    const call = new Call(r, h, head ?? '');
    if (closed || head === null) {
      const e = new Error(closed ? 'upstream client closed' : 'request target not fit to forward');
      queueMicrotask(() => call.fail(e));
      return call;
    }
    let c: Conn;
    try {
      c = take();
    } catch (e) {
      queueMicrotask(() => call.fail(e as Error));
      return call;
    }
    let started = false;
    try {
      h.onStart(call);
      started = true;
    } finally {
      // Aborted before a byte was written (or onStart threw): the connection goes back untouched.
      if (!started || call.finished) c.release(true);
    }
    if (!call.finished) call.start(c);
    return call;
  }

  return {
    request,
    /** Open connections, and how many of them are idle (for tests and metrics). */
    stats: (): { open: number; idle: number } => ({ open: all.size, idle: idle.length }),
    close(): Promise<void> {
      closed = true;
      if (ticker) clearInterval(ticker);
      ticker = null;
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

/** The request head, or null for a target that would change its framing; a header value that would is dropped. */
function serialize(r: UpstreamRequest, host: string): string | null {
  if (!TARGET.test(r.path)) return null;
  let s = `${r.method} ${r.path} HTTP/1.1\r\nhost: ${host}\r\nconnection: keep-alive\r\n`;
  for (const k in r.headers) {
    const v = r.headers[k]!;
    if (HEADER_VALUE.test(v)) s += `${k}: ${v}\r\n`;
  }
  if (r.body) s += `content-length: ${r.body.length}\r\n`;
  else if (r.method === 'POST' || r.method === 'PUT' || r.method === 'PATCH') s += 'content-length: 0\r\n';
  return `${s}\r\n`;
}
