#!/usr/bin/env node
// Opens --count mTLS connections, asks each for an endless stream
// (/api/generate, num_predict 50M), reads each answer's head and then reads
// nothing more: the client that holds upstream slots without reading.
// Prints one JSON line per answer head ({i, status, retryAfter}), then holds
// the connections for --hold-sec and prints {done: true}.
//   node slow-readers.mjs --url URL --ca CA --cert CRT --key KEY --count N --hold-sec S
import { connect } from 'node:tls';
import { args, print, tlsOptions } from './common.mjs';

const a = args({ count: { type: 'string', default: '8' }, 'hold-sec': { type: 'string', default: '30' } });
const url = new URL(a.url);
const body = JSON.stringify({ model: a.model, prompt: 'go on forever', options: { num_predict: 50_000_000 } });
const request = `POST /api/generate HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
const sockets = [];
for (let i = 0; i < Number(a.count); i++) {
  const s = connect({ host: url.hostname, port: Number(url.port), ...tlsOptions(a) });
  sockets.push(s);
  let got = '';
  let seen = false;
  s.on('error', () => undefined);
  s.setEncoding('latin1');
  s.on('secureConnect', () => s.write(request));
  s.on('data', (c) => {
    if (seen) return;
    got += c;
    const end = got.indexOf('\r\n\r\n');
    if (end === -1) return;
    seen = true;
    const head = got.slice(0, end);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
    print({ i, status, retryAfter: /\r\nretry-after: *(\d+)/i.exec(head)?.[1] ?? null });
    if (status === 200) s.pause();
  });
  // one after the other: the guard sees them in order
  await new Promise((r) => setTimeout(r, 50));
}
setTimeout(() => {
  print({ done: true });
  for (const s of sockets) s.destroy();
  process.exit(0);
}, Number(a['hold-sec']) * 1000);
