import { describe, expect, test } from 'vitest';
import { createResponseParser, ResponseFramingError, type ResponseHead } from '../../../src/core/http-response.js';

interface Seen {
  head: ResponseHead | null;
  body: string;
  /** null while the response has not ended; else whether the connection may be reused. */
  keepAlive: boolean | null;
}

/** Feeds `pieces` in order (then EOF if asked) and returns what the sink saw. */
function parse(pieces: string[], o: { bodyless?: boolean; eof?: boolean; maxHeadBytes?: number } = {}): Seen {
  const seen: Seen = { head: null, body: '', keepAlive: null };
  const p = createResponseParser(
    {
      head: (h) => {
        expect(seen.head).toBeNull();
        seen.head = h;
      },
      data: (c) => (seen.body += c.toString('latin1')),
      end: (k) => {
        expect(seen.keepAlive).toBeNull();
        seen.keepAlive = k;
      },
    },
    { maxHeadBytes: o.maxHeadBytes ?? 1024, bodyless: o.bodyless ?? false },
  );
  for (const piece of pieces) p.push(Buffer.from(piece, 'latin1'));
  if (o.eof) p.eof();
  expect(p.done).toBe(seen.keepAlive !== null);
  return seen;
}

/** The same response cut at every position into two pieces, and byte by byte. */
function splits(raw: string): string[][] {
  const out: string[][] = [[raw], raw.split('')];
  for (let i = 1; i < raw.length; i++) out.push([raw.slice(0, i), raw.slice(i)]);
  return out;
}

const OLLAMA_STREAM =
  'HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nDate: Sat, 05 Dec 2026 04:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n' +
  '1e\r\n{"response":"Hi","done":false}\r\n' +
  '7;name=value\r\n{"a":1}\r\n' +
  '0\r\nX-Trailer: t\r\n\r\n';

describe('an HTTP/1.1 response parsed for framing', () => {
  // name, raw bytes, options → status, body, keepAlive
  const CASES: [string, string, { bodyless?: boolean; eof?: boolean }, number, string, boolean][] = [
    ['Ollama streaming: chunked, with a chunk extension and a trailer', OLLAMA_STREAM, {}, 200, '{"response":"Hi","done":false}{"a":1}', true],
    ['Content-Length', 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello', {}, 200, 'hello', true],
    ['Content-Length 0', 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n', {}, 404, '', true],
    ['a repeated, equal Content-Length', 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\nok', {}, 200, 'ok', true],
    ['Connection: close ends keep-alive', 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok', {}, 200, 'ok', false],
    ['no length: the body ends with the connection', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end', { eof: true }, 200, 'until the end', false],
    ['HTTP/1.0 without keep-alive', 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok', {}, 200, 'ok', false],
    ['HTTP/1.0 with keep-alive', 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok', {}, 200, 'ok', true],
    ['204 has no body whatever it says', 'HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n', {}, 204, '', true],
    ['304 has no body', 'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n', {}, 304, '', true],
    ['an answer to HEAD has no body', 'HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n', { bodyless: true }, 200, '', true],
    ['an interim 100 Continue is skipped', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', {}, 200, 'ok', true],
    ['a status line without a reason', 'HTTP/1.1 500\r\nContent-Length: 0\r\n\r\n', {}, 500, '', true],
    ['chunked in HTTP/1.0, even with keep-alive: read, then the connection is closed', 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', {}, 200, 'ok', false],
  ];
  test.each(CASES)('%s (every split)', (_, raw, o, status, body, keepAlive) => {
    for (const pieces of splits(raw)) {
      const seen = parse(pieces, o);
      expect(seen.head?.status).toBe(status);
      expect(seen.body).toBe(body);
      expect(seen.keepAlive).toBe(keepAlive);
    }
  });

  test('headers are lower-cased, trimmed, and repeated ones kept as a list', () => {
    const seen = parse(['HTTP/1.1 200 OK\r\nContent-Type:  application/json \r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n']);
    expect(seen.head!.headers).toEqual({ 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'], 'x-empty': '', 'content-length': '0' });
  });

  test('a header named __proto__ is a header, not a prototype; each interim answer is reported', () => {
    const seen = parse(['HTTP/1.1 200 OK\r\n__proto__: x\r\nContent-Length: 0\r\n\r\n']);
    expect(Object.getPrototypeOf(seen.head!.headers)).toBeNull();
    expect(seen.head!.headers['__proto__']).toBe('x');
    let interims = 0;
    const p = createResponseParser({ head: () => undefined, data: () => undefined, end: () => undefined, interim: () => interims++ }, { maxHeadBytes: 1024, bodyless: false });
    p.push(Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n'));
    expect([interims, p.done]).toEqual([2, true]);
  });

  test('bytes after the end of the response: it ends, and the connection is not reused', () => {
    expect(parse(['HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n']).keepAlive).toBe(false);
    expect(parse([OLLAMA_STREAM + 'x']).keepAlive).toBe(false);
  });

  test('body pieces are views into the pushed buffer, not copies', () => {
    const buf = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');
    const pieces: Buffer[] = [];
    createResponseParser({ head: () => undefined, data: (c) => pieces.push(c), end: () => undefined }, { maxHeadBytes: 1024, bodyless: false }).push(buf);
    expect(pieces).toHaveLength(1);
    expect(pieces[0]!.buffer).toBe(buf.buffer);
  });
});

describe('malformed or incomplete responses are refused', () => {
  const BAD: [string, string, string][] = [
    ['Transfer-Encoding with Content-Length', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello', 'both Transfer-Encoding and Content-Length'],
    ['a coding other than chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 'unsupported Transfer-Encoding'],
    ['differing Content-Length values', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok', 'bad Content-Length'],
    ['a Content-Length that is not a number', 'HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello', 'bad Content-Length'],
    ['a chunk size that is not hex', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'bad chunk size'],
    ['a chunk size with a sign', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n', 'bad chunk size'],
    ['a chunk longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n', 'chunk not followed by CRLF'],
    ['a bare LF after a chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n', 'bare LF'],
    ['a folded header line', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n', 'folded header line'],
    ['a bare LF in the head', 'HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 0\r\n\r\n', 'bare LF'],
    ['a header name with a space', 'HTTP/1.1 200 OK\r\nContent Length: 0\r\n\r\n', 'bad header name'],
    ['a header line without a colon', 'HTTP/1.1 200 OK\r\nnonsense\r\n\r\n', 'header line without a name'],
    ['a control character in a value', 'HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n', 'control character'],
    ['not HTTP/1.x', 'HTTP/2 200\r\nContent-Length: 0\r\n\r\n', 'bad status line'],
    ['a status of two digits', 'HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n', 'bad status line'],
    ['a protocol switch nobody asked for', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n', 'unexpected protocol switch'],
    ['a head larger than the limit', `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(2000)}\r\n\r\n`, 'head too large'],
    ['a head larger than the limit, never ended', `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(2000)}`, 'head too large'],
    ['a Content-Length ending in a vertical tab (only SP and HTAB are whitespace)', 'HTTP/1.1 200 OK\r\nContent-Length: 2\x0b\r\n\r\nok', 'control character'],
    ['a Content-Length after a no-break space', 'HTTP/1.1 200 OK\r\nContent-Length: \xa02\r\n\r\nok', 'bad Content-Length'],
    ['a Content-Length followed by a lone CR', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\r\n\r\nok', 'control character'],
    ['a Transfer-Encoding ending in a form feed', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\x0c\r\n\r\n0\r\n\r\n', 'control character'],
    ['a chunk-size line that never ends', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;${'x'.repeat(5000)}`, 'line too long'],
  ];
  test.each(BAD)('%s', (_, raw, why) => {
    for (const pieces of [[raw], raw.split('')]) {
      let heads = 0;
      const p = createResponseParser({ head: () => heads++, data: () => undefined, end: () => undefined }, { maxHeadBytes: 1024, bodyless: false });
      expect(() => pieces.forEach((s) => p.push(Buffer.from(s, 'latin1')))).toThrow(ResponseFramingError);
      expect(() => {
        const q = createResponseParser({ head: () => undefined, data: () => undefined, end: () => undefined }, { maxHeadBytes: 1024, bodyless: false });
        q.push(Buffer.from(raw, 'latin1'));
      }).toThrow(why);
      // A head whose framing is refused is never handed on: nothing reaches the client.
      if (/Transfer-Encoding|Content-Length|folded|bare LF in the head|status|switch/.test(why)) expect(heads).toBe(0);
    }
  });

  const EARLY: [string, string, string][] = [
    ['before any byte', '', 'upstream closed the connection'],
    ['in the head', 'HTTP/1.1 200 OK\r\nContent-Le', 'before the response ended'],
    ['in a Content-Length body', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal', 'before the response ended'],
    ['in a chunked body, before the last chunk', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n', 'before the response ended'],
    ['in the trailers', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n', 'before the response ended'],
  ];
  test.each(EARLY)('the connection closed %s', (_, raw, why) => {
    const seen: Seen = { head: null, body: '', keepAlive: null };
    const p = createResponseParser({ head: (h) => (seen.head = h), data: () => undefined, end: (k) => (seen.keepAlive = k) }, { maxHeadBytes: 1024, bodyless: false });
    if (raw) p.push(Buffer.from(raw, 'latin1'));
    expect(() => p.eof()).toThrow(why);
    expect(seen.keepAlive).toBeNull();
    expect(p.done).toBe(false);
  });
});
