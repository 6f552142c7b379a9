#!/usr/bin/env node
// The floor for any guard written on Node's HTTPS server: the same mTLS settings as the guard
// (client certificate required, verified by OpenSSL against the bench CA, TLS 1.2+, noDelay)
// answering a fixed body, with no policy, no upstream and no records. nginx-static is nginx's
// counterpart in nginx.conf.template; the two side by side say how far a single Node process
// can go on this machine before the guard does anything.
//
//   node node-static.mjs --dir DIR --listen 127.0.0.1:PORT
// Prints {"listening":PORT,"pid":PID} when ready; SIGTERM closes it.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { dir: { type: 'string' }, listen: { type: 'string' } } });
const dir = values.dir;
const body = '{"version":"0.12.6"}';
const server = createServer(
  {
    key: readFileSync(join(dir, 'server.key'), 'utf8'),
    cert: readFileSync(join(dir, 'server.pem'), 'utf8'),
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    noDelay: true,
    keepAliveTimeout: 65_000,
  },
  (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  },
);
const at = values.listen.lastIndexOf(':');
server.listen({ host: values.listen.slice(0, at), port: Number(values.listen.slice(at + 1)), backlog: 4096 }, () => {
  process.stdout.write(`${JSON.stringify({ listening: server.address().port, pid: process.pid })}\n`);
});
process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
