#!/usr/bin/env node
// One kept-alive connection (an undici Client is one socket): a request, then
// wait until the file --go exists, then a second request on the same client.
//   node keepalive.mjs --url URL --ca CA --cert CRT --key KEY --go FILE
// Prints one JSON line per event: {event:'first'|'disconnect'|'second', at, ...}.
import { existsSync } from 'node:fs';
import { Client } from 'undici';
import { args, print, tlsOptions } from './common.mjs';

const a = args({ go: { type: 'string' }, path: { type: 'string', default: '/api/version' } });
let connects = 0;
const client = new Client(a.url, {
  connect: { ...tlsOptions(a), timeout: 3000 }, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000,
  headersTimeout: 3000, bodyTimeout: 3000,
});
client.on('connect', () => connects++);
client.on('disconnect', (_origin, _targets, err) => print({ event: 'disconnect', at: Date.now(), error: err?.code ?? err?.message ?? null }));

const once = async (event) => {
  try {
    const r = await client.request({ path: a.path, method: 'GET', signal: AbortSignal.timeout(5000) });
    const body = await r.body.text();
    print({ event, at: Date.now(), ok: true, status: r.statusCode, body, connects });
  } catch (e) {
    print({ event, at: Date.now(), ok: false, error: e?.code ?? e?.message ?? String(e), connects });
  }
};

await once('first');
const until = Date.now() + 30_000;
while (!existsSync(a.go) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
await once('second');
await client.destroy();
