#!/usr/bin/env node
// Sends bytes exactly as given over one mTLS connection (for framing that
// ordinary clients refuse to produce, e.g. Content-Length with
// Transfer-Encoding) and prints what came back before the server closed.
//   node raw.mjs --url URL --ca CA --cert CRT --key KEY --request 'POST / HTTP/1.1\r\n...'
// (\r and \n in --request are escapes.) Prints {status, response, closed}.
import { connect } from 'node:tls';
import { args, print, tlsOptions } from './common.mjs';

const a = args({ request: { type: 'string' }, 'wait-ms': { type: 'string', default: '3000' } });
const url = new URL(a.url);
const raw = a.request.replace(/\\r/g, '\r').replace(/\\n/g, '\n');
const socket = connect({ host: url.hostname, port: Number(url.port), ...tlsOptions(a) });
let response = '';
const done = (closed) => {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
  print({ status, response, closed });
  socket.destroy();
  process.exit(0);
};
socket.on('secureConnect', () => socket.write(raw));
socket.on('data', (d) => (response += d.toString('utf8')));
socket.on('close', () => done(true));
socket.on('error', () => undefined);
setTimeout(() => done(false), Number(a['wait-ms']));
