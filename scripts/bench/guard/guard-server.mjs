#!/usr/bin/env node
// The guard for the benchmark: the real createGuard (dist/guard/server.js) wired as
// `wg-ollama guard` wires it (dist/guard/main.js), minus the gateway sync client:
//   - TLS material from --dir (made by common.mjs makeCertificates);
//   - one peer "bench", address 127.0.0.1, its certificate's serial; policy = DEFAULT_POLICY
//     merged with a model allowlist, a token budget, and rate/stream limits high enough
//     never to refuse a benchmark request (so every check still runs on every request);
//   - audit on, as in production (dist/guard/main.js): every record goes through the audit
//     trail (createAuditTrail, auditFailure "refuse") to the spool's writer thread
//     (dist/guard/spool-thread.js: SQLite WAL, one transaction per batch, off the event loop);
//   - prom-client metrics with the default process metrics, as in production.
//
//   node guard-server.mjs --dir DIR --listen 127.0.0.1:PORT --upstream http://127.0.0.1:PORT
//                         [--upstream-connections N] [--trace-ctl 127.0.0.1:PORT]
//                         [--pool NAME=URL/PARALLEL,...] [--queue-per-peer N] [--member]
// --member: a pool member guard (src/guard/member.ts), serving only the router certificate of
// router.json; a --pool entry with an https:// URL is such a member, reached with router.pem.
// --pool: the guard routes to these GPU hosts (src/guard/pool.ts) instead of --upstream; a
// second peer (light.json, from makeCertificates(dir, { secondPeer: true })) is added if present.
// --trace-ctl: the guard keeps per-request leg times (src/guard/trace.ts); GET /trace on that
// plain-HTTP listener returns them as JSON and forgets them. Without it the guard traces nothing.
// Prints {"listening":PORT,"pid":PID} when ready. SIGTERM: close, flush the spool, exit.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { dist } from './common.mjs';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    listen: { type: 'string' },
    upstream: { type: 'string' },
    'upstream-connections': { type: 'string' },
    'trace-ctl': { type: 'string' },
    pool: { type: 'string' },
    'queue-per-peer': { type: 'string' },
    member: { type: 'boolean' },
  },
});
const { createGuard } = await dist('guard/server.js');
const { guardMetrics } = await dist('guard/metrics.js');
const { createAuditTrail } = await dist('guard/audit.js');
const { startSpoolThread } = await dist('guard/spool-thread.js');
const { openSpool } = await dist('guard/spool.js');
const { DEFAULT_POLICY, mergePolicy } = await dist('core/policy.js');
const { limitsSchema } = await dist('core/limits.js');

const dir = values.dir;
const tls = {
  ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
  cert: readFileSync(join(dir, 'server.pem'), 'utf8'),
  key: readFileSync(join(dir, 'server.key'), 'utf8'),
};
const tlsCa = () => tls.ca;
const peer = JSON.parse(readFileSync(join(dir, 'peer.json'), 'utf8'));
// --member: a pool member guard; only the router's certificate (router.json) may use it.
const member = values.member ? { routers: () => new Set([JSON.parse(readFileSync(join(dir, 'router.json'), 'utf8')).serial]) } : undefined;
const peers = [peer, ...(existsSync(join(dir, 'light.json')) ? [JSON.parse(readFileSync(join(dir, 'light.json'), 'utf8'))] : [])];
const pool = values.pool
  ? {
      members: values.pool.split(',').map((m) => {
        const [name, rest] = m.split('=');
        const at = rest.lastIndexOf('/');
        const origin = rest.slice(0, at);
        // A member guard (https://): the router presents its own guard certificate, as `wg-ollama guard` does.
        const tls = origin.startsWith('https://') ? { ca: tlsCa(), cert: readFileSync(join(dir, 'router.pem'), 'utf8'), key: readFileSync(join(dir, 'router.key'), 'utf8') } : undefined;
        return { name, origin, parallel: Number(rest.slice(at + 1)), ...(tls ? { tls } : {}) };
      }),
      probeIntervalMs: 2000,
      queue: { perPeer: Number(values['queue-per-peer'] ?? 8), total: 256, maxWaitMs: 30_000 },
    }
  : undefined;
const policy = mergePolicy(DEFAULT_POLICY, {
  models: ['llama3.2', 'qwen2.5:*', 'nomic-embed-text'],
  tokensPerDay: 1e12,
  // Above the schema's caps on purpose: the benchmark must measure the checks, not be refused by them.
  requestsPerMinute: 1e9,
  burst: 1e9,
  maxStreams: 1e6,
});

const spoolPath = join(dir, `spool-${process.pid}.db`);
const spool = openSpool(spoolPath);
const writer = startSpoolThread(spoolPath, { maxBytes: 1 << 30 });
const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'wgo_guard_process_' });
const log = {
  info: () => {},
  warn: (o, m) => process.stderr.write(`warn ${m} ${JSON.stringify(o)}\n`),
  error: (o, m) => process.stderr.write(`error ${m} ${JSON.stringify(o)}\n`),
};
const metrics = guardMetrics(registry);
const audit = createAuditTrail({ spool: writer, mode: 'refuse', metrics, log });
const guard = createGuard({
  tls,
  // One peer drives every request here: its share of the pool is the whole pool (the benchmark measures the proxy, not fairness).
  limits: limitsSchema.parse(values['upstream-connections']
    ? { maxUpstreamRequests: Number(values['upstream-connections']), maxUpstreamPerPeer: Number(values['upstream-connections']) }
    : { maxUpstreamPerPeer: limitsSchema.parse({}).maxUpstreamRequests }),
  upstream: values.upstream,
  metrics,
  record: audit.record,
  audit,
  log,
  trace: values['trace-ctl'] !== undefined,
  ...(pool ? { pool } : {}),
  ...(member ? { member } : {}),
});
if (guard.pool) await guard.pool.start();
guard.setPeers({
  version: 'bench-1',
  peers: peers.map((p) => ({ name: p.name, address: p.address, serial: p.serial, expiresAt: p.expiresAt, policy })),
  logPrompts: false,
  tokensToday: {},
  day: new Date().toISOString().slice(0, 10),
});

const [host, port] = [values.listen.slice(0, values.listen.lastIndexOf(':')), Number(values.listen.slice(values.listen.lastIndexOf(':') + 1))];
let traceCtl = null;
if (values['trace-ctl']) {
  traceCtl = createServer((req, res) => {
    if (req.url !== '/trace') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(guard.trace.drain()));
  });
  const t = values['trace-ctl'];
  await new Promise((r) => traceCtl.listen(Number(t.slice(t.lastIndexOf(':') + 1)), t.slice(0, t.lastIndexOf(':')), r));
}
guard.server.listen({ host, port, backlog: 4096 }, () => {
  process.stdout.write(JSON.stringify({ listening: guard.server.address().port, pid: process.pid, ...(traceCtl ? { traceCtl: traceCtl.address().port } : {}) }) + '\n');
});

const stopAll = () => {
  void (async () => {
    const t = setTimeout(() => process.exit(1), 5000);
    traceCtl?.close();
    await guard.close();
    await audit.flush();
    await audit.stop();
    await writer.close();
    process.stderr.write(`records spooled: ${spool.count()}\n`);
    spool.close();
    clearTimeout(t);
    process.exit(0);
  })();
};
process.once('SIGTERM', stopAll);
process.once('SIGINT', stopAll);
