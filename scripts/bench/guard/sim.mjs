#!/usr/bin/env node
// The Ollama-API simulator (scripts/lab/ollama-sim.mjs, createSimulator, unchanged) as the
// benchmark's upstream, plus two things a long benchmark needs:
//   - its in-memory request log is emptied every second (it would grow by ~1 KB per request);
//   - for requests whose User-Agent starts with "bench-s-", the CLOCK_MONOTONIC time of every
//     write of the answer (one per NDJSON line) is kept, so the load generator can compute the
//     one-way delay of each chunk: arrival at the client − emission here. GET /emits on the
//     control listener returns {ua: [µs, ...]} and forgets them; GET /arrivals returns
//     {ua: µs} (when each such request reached the simulator) and forgets them.
//
//   node sim.mjs --listen 127.0.0.1:PORT --ctl 127.0.0.1:PORT [--token-rate N] [--tokens N]
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { createSimulator } from '../../lab/ollama-sim.mjs';

const { values } = parseArgs({
  options: { listen: { type: 'string' }, ctl: { type: 'string' }, 'token-rate': { type: 'string', default: '50' }, tokens: { type: 'string', default: '50' } },
});
const hostPort = (s) => {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
};
const sim = createSimulator({ tokenRate: Number(values['token-rate']), tokens: Number(values.tokens) });
const emits = new Map();
const arrivals = new Map();
const us = () => Number(process.hrtime.bigint()) / 1e3;

sim.server.prependListener('request', (req, res) => {
  const ua = req.headers['user-agent'];
  if (typeof ua !== 'string' || !ua.startsWith('bench-s-')) return;
  arrivals.set(ua, us());
  const list = [];
  emits.set(ua, list);
  const write = res.write;
  const end = res.end;
  res.write = function (chunk, ...rest) {
    list.push(us());
    return write.call(this, chunk, ...rest);
  };
  res.end = function (chunk, ...rest) {
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function' && chunk.length > 0) list.push(us());
    return end.call(this, chunk, ...rest);
  };
});
sim.server.keepAliveTimeout = 120_000;
sim.server.maxRequestsPerSocket = 0;
sim.server.headersTimeout = 130_000;
sim.server.requestTimeout = 0;

const clearTimer = setInterval(() => sim.clear(), 1000);
clearTimer.unref();

const ctl = createServer((req, res) => {
  if (req.url === '/emits') {
    const body = JSON.stringify(Object.fromEntries(emits));
    emits.clear();
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(body);
  }
  if (req.url === '/arrivals') {
    const body = JSON.stringify(Object.fromEntries(arrivals));
    arrivals.clear();
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(body);
  }
  res.writeHead(404).end();
});

const a = hostPort(values.listen);
const c = hostPort(values.ctl);
sim.server.listen({ host: a.host, port: a.port, backlog: 4096 }, () => {
  ctl.listen(c.port, c.host, () => {
    process.stdout.write(JSON.stringify({ listening: sim.server.address().port, ctl: ctl.address().port, pid: process.pid }) + '\n');
  });
});
const stopAll = () => {
  ctl.close();
  sim.server.close(() => process.exit(0));
  sim.server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
};
process.once('SIGTERM', stopAll);
process.once('SIGINT', stopAll);
