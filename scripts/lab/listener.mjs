#!/usr/bin/env node
// A lab host's listeners: one small HTTP server per port on every address.
//   node listener.mjs NAME PORT [PORT...]
// GET /          -> {"host": NAME, "port": N, "from": "<client address>"}
// GET /api/version -> {"version": "0.0.0-lab"} (what `ollama` answers)
// GET /stream?seconds=S -> one NDJSON line every 100 ms for S seconds (at most 60)
// Closed streams are reported on stderr as JSON lines: {"closed": ..., "from": ..., "reason": ...}
import { createServer } from 'node:http';

const [name, ...ports] = process.argv.slice(2);
if (!name || ports.length === 0) {
  console.error('usage: listener.mjs NAME PORT [PORT...]');
  process.exit(2);
}

for (const port of ports.map(Number)) {
  const server = createServer((req, res) => {
    const from = req.socket.remoteAddress;
    const url = new URL(req.url ?? '/', 'http://lab');
    if (url.pathname === '/api/version') {
      res.setHeader('content-type', 'application/json');
      return res.end(JSON.stringify({ version: '0.0.0-lab' }));
    }
    if (url.pathname === '/stream') {
      const seconds = Math.min(Number(url.searchParams.get('seconds') ?? '30') || 30, 60);
      res.setHeader('content-type', 'application/x-ndjson');
      let n = 0;
      const end = Date.now() + seconds * 1000;
      const timer = setInterval(() => {
        if (Date.now() > end) {
          clearInterval(timer);
          return res.end(JSON.stringify({ done: true, n }) + '\n');
        }
        res.write(JSON.stringify({ n: n++, at: Date.now() }) + '\n');
      }, 100);
      const closed = (reason) => {
        clearInterval(timer);
        process.stderr.write(JSON.stringify({ closed: Date.now(), from, reason }) + '\n');
      };
      req.socket.once('error', (e) => closed(e.code ?? 'error'));
      req.socket.once('close', () => closed('close'));
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ host: name, port, from }));
  });
  server.listen(port, '::');
}
process.on('SIGTERM', () => process.exit(0));
