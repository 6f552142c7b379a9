#!/usr/bin/env node
// The failover benchmark's client (run in the client namespace, through its tunnel): a new
// mTLS connection and GET /api/version every --every ms, each with a --timeout ms limit, until
// --until (epoch ms). One JSON line per attempt: {t (epoch ms, sent), ok, status, ms, err}.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({ options: {
  url: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
  every: { type: 'string', default: '100' }, timeout: { type: 'string', default: '1000' }, until: { type: 'string' },
} });
if (!a.url || !a.ca || !a.cert || !a.key || !a.until) {
  process.stderr.write('usage: probe.mjs --url URL --ca F --cert F --key F --until EPOCH_MS [--every MS] [--timeout MS]\n');
  process.exit(2);
}
const tls = { ca: readFileSync(a.ca), cert: readFileSync(a.cert), key: readFileSync(a.key) };
const every = Number(a.every);
const timeout = Number(a.timeout);
const until = Number(a.until);

const once = () =>
  new Promise((resolve) => {
    const t = Date.now();
    const done = (ok, status, err) => resolve({ t, ok, status, ms: Date.now() - t, err });
    const req = https.get(`${a.url}/api/version`, { ...tls, agent: false, timeout }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode === 200, res.statusCode, null));
      res.on('error', (e) => done(false, res.statusCode, e.message));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => done(false, 0, e.message));
  });

while (Date.now() < until) {
  const started = Date.now();
  process.stdout.write(`${JSON.stringify(await once())}\n`);
  await new Promise((r) => setTimeout(r, Math.max(0, every - (Date.now() - started))));
}
