/**
 * An incremental HTTP/1.1 response parser that tracks framing only: the status and headers,
 * the body's bytes as they arrive (chunked framing removed), where the response ends, and
 * whether the connection may carry another request. It is what the guard needs of Ollama's
 * answers (guard/upstream.ts) and nothing more: no decoding of content, no interpretation of
 * headers beyond framing and keep-alive.
 *
 * Strict where a lenient parser would let two parties disagree about where a response ends:
 * Transfer-Encoding together with Content-Length, any coding but `chunked`, differing or
 * malformed Content-Length values, folded header lines, and bare LF are refused.
 */

export interface ResponseHead {
  status: number;
  /** Lower-cased names; a repeated header becomes an array. */
  headers: Record<string, string | string[]>;
}

export interface ResponseSink {
  head(h: ResponseHead): void;
  /** A piece of the body; a view into the pushed buffer, not a copy. */
  data(chunk: Buffer): void;
  /** The response is complete; `keepAlive` says whether the connection may be reused. */
  end(keepAlive: boolean): void;
  /** An interim (1xx) answer was skipped (the caller may bound how many it takes). */
  interim?(): void;
}

/** The answer is malformed; `detail` says how (the message adds where it came from). */
export class ResponseFramingError extends Error {
  override name = 'ResponseFramingError';
  constructor(readonly detail: string) {
    super(`malformed response from upstream: ${detail}`);
  }
}

export interface ResponseParser {
  /** Bytes from the connection, in order; throws ResponseFramingError on malformed input. */
  push(buf: Buffer): void;
  /** The peer closed its side: ends a body delimited by the close, or throws (an Error) if the response is incomplete. */
  eof(): void;
  /** Whether the response has ended. */
  readonly done: boolean;
  /** Ready for the next response on the same connection (`bodyless`: it answers a HEAD request). */
  reset(bodyless: boolean): void;
}

export interface ResponseParserOptions {
  /** The response head (status line and headers) may be at most this long. */
  maxHeadBytes: number;
  /** The request was HEAD: no body follows, whatever the headers say (reset() sets it per response). */
  bodyless: boolean;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [^\r\n]*)?$/;
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,12})[ \t]*(?:;[^\r\n]*)?$/;
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILERS = 16 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');

type State = 'head' | 'length' | 'size' | 'data' | 'data-crlf' | 'trailers' | 'close' | 'done';

export function createResponseParser(sink: ResponseSink, o: ResponseParserOptions): ResponseParser {
  let state: State = 'head';
  /** Bytes of a head, chunk-size line or trailer section split across pushes. */
  let pending: Buffer | null = null;
  let remaining = 0;
  let keepAlive = true;
  let trailerBytes = 0;
  let bodyless = o.bodyless;

  const fail = (why: string): never => {
    throw new ResponseFramingError(why);
  };

  const finish = (leftover: boolean): void => {
    state = 'done';
    sink.end(keepAlive && !leftover);
  };

  /** Parses one complete head; returns false for an interim (1xx) response, which is skipped. */
  const parseHead = (text: string): boolean => {
    const lines = text.split('\r\n');
    const m = STATUS_LINE.exec(lines[0]!);
    if (!m) fail('bad status line');
    const minor = m![1]!;
    const status = Number(m![2]);
    if (status === 101) fail('unexpected protocol switch');
    // No prototype: a header named __proto__ is a header like any other.
    const headers: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.includes('\n')) fail('bare LF');
      if (line[0] === ' ' || line[0] === '\t') fail('folded header line');
      const colon = line.indexOf(':');
      if (colon <= 0) fail('header line without a name');
      const name = line.slice(0, colon);
      if (!TOKEN.test(name)) fail('bad header name');
      // Only optional whitespace (SP, HTAB) is trimmed, as RFC 9110 defines it; \v, \f, CR or NBSP make the value invalid.
      const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
      if (BAD_VALUE.test(value)) fail('control character in a header value');
      const key = name.toLowerCase();
      const prev = headers[key];
      headers[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
    if (status < 200) {
      sink.interim?.();
      return false;
    }

    const connection = tokens(headers.connection);
    keepAlive = minor === '1' ? !connection.includes('close') : connection.includes('keep-alive');
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    let next: State;
    if (bodyless || status === 204 || status === 304) {
      remaining = 0;
      next = 'length';
    } else if (te !== undefined) {
      if (cl !== undefined) fail('both Transfer-Encoding and Content-Length');
      const codings = tokens(te);
      if (codings.length !== 1 || codings[0] !== 'chunked') fail('unsupported Transfer-Encoding');
      // Chunked in an HTTP/1.0 answer: read it, but close the connection after (RFC 9112 §6.1).
      if (minor === '0') keepAlive = false;
      next = 'size';
    } else if (cl !== undefined) {
      const values = Array.isArray(cl) ? cl : [cl];
      if (!values.every((v) => /^\d{1,15}$/.test(v) && v === values[0])) fail('bad Content-Length');
      remaining = Number(values[0]);
      next = 'length';
    } else {
      keepAlive = false;
      next = 'close';
    }
    state = next;
    sink.head({ status, headers });
    return true;
  };

  /** Takes a CRLF-terminated line starting at `at`: [line, next offset], or null if it is not all here (kept in `pending`). */
  const line = (buf: Buffer, at: number, max: number): [string, number] | null => {
    const lf = buf.indexOf(10, at);
    if (lf === -1) {
      if (buf.length - at > max) fail('line too long');
      pending = buf.subarray(at);
      return null;
    }
    if (lf - at > max) fail('line too long');
    if (lf === at || buf[lf - 1] !== 13) fail('bare LF');
    return [buf.toString('latin1', at, lf - 1), lf + 1];
  };

  const push = (input: Buffer): void => {
    let buf = input;
    if (pending) {
      buf = Buffer.concat([pending, input]);
      pending = null;
    }
    let at = 0;
    while (at < buf.length) {
      switch (state) {
        case 'head': {
          const end = buf.indexOf(HEAD_END, at);
          if (end === -1) {
            if (buf.length - at > o.maxHeadBytes) fail('head too large');
            pending = buf.subarray(at);
            return;
          }
          if (end - at > o.maxHeadBytes) fail('head too large');
          const text = buf.toString('latin1', at, end);
          at = end + 4;
          if (parseHead(text) && (state as State) === 'length' && remaining === 0) finish(at < buf.length);
          break;
        }
        case 'length': {
          const n = Math.min(remaining, buf.length - at);
          remaining -= n;
          sink.data(buf.subarray(at, at + n));
          at += n;
          if (remaining === 0) finish(at < buf.length);
          break;
        }
        case 'close':
          sink.data(at === 0 ? buf : buf.subarray(at));
          return;
        case 'size': {
          const l = line(buf, at, MAX_CHUNK_LINE);
          if (!l) return;
          const m = CHUNK_SIZE.exec(l[0]);
          if (!m) fail('bad chunk size');
          at = l[1];
          remaining = parseInt(m![1]!, 16);
          state = remaining === 0 ? 'trailers' : 'data';
          break;
        }
        case 'data': {
          const n = Math.min(remaining, buf.length - at);
          remaining -= n;
          sink.data(buf.subarray(at, at + n));
          at += n;
          if (remaining === 0) state = 'data-crlf';
          break;
        }
        case 'data-crlf': {
          if (buf.length - at < 2) {
            if (buf[at] !== 13) fail('chunk not followed by CRLF');
            pending = buf.subarray(at);
            return;
          }
          if (buf[at] !== 13 || buf[at + 1] !== 10) fail('chunk not followed by CRLF');
          at += 2;
          state = 'size';
          break;
        }
        case 'trailers': {
          const l = line(buf, at, MAX_TRAILERS);
          if (!l) return;
          trailerBytes += l[1] - at;
          if (trailerBytes > MAX_TRAILERS) fail('trailers too large');
          at = l[1];
          if (l[0] === '') finish(at < buf.length);
          break;
        }
        case 'done':
          // Bytes after the end of the response were counted by finish(): the connection is not reused.
          return;
      }
    }
  };

  return {
    push,
    eof(): void {
      if (state === 'done') return;
      if (state === 'close') return finish(false);
      throw new Error(state === 'head' && pending === null ? 'upstream closed the connection' : 'upstream closed the connection before the response ended');
    },
    get done(): boolean {
      return state === 'done';
    },
    reset(b: boolean): void {
      state = 'head';
      pending = null;
      remaining = 0;
      keepAlive = true;
      trailerBytes = 0;
      bodyless = b;
    },
  };
}

function tokens(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v.join(',') : v)
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '');
}
