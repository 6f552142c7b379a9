// Joins two network namespaces through a unix socket (the file system is shared,
// the network is not). Used by the demo to let the guard in the lab's GPU
// namespace reach a real Ollama on the host's loopback:
//   host side:      node ns-bridge.mjs unix-to-tcp SOCKET 127.0.0.1:11434
//   namespace side: node ns-bridge.mjs tcp-to-unix 127.0.0.1:11434 SOCKET
import { createConnection, createServer } from 'node:net';
import { rmSync } from 'node:fs';

const [mode, from, to] = process.argv.slice(2);
const hostPort = (t) => {
  const i = t.lastIndexOf(':');
  return { host: t.slice(0, i), port: Number(t.slice(i + 1)) };
};
if (!['unix-to-tcp', 'tcp-to-unix'].includes(mode) || !from || !to) {
  console.error('usage: ns-bridge.mjs unix-to-tcp SOCKET HOST:PORT | tcp-to-unix HOST:PORT SOCKET');
  process.exit(2);
}
const dial = () => (mode === 'unix-to-tcp' ? createConnection(hostPort(to)) : createConnection(to));
const server = createServer((client) => {
  const upstream = dial();
  client.pipe(upstream).pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end);
  upstream.on('error', end);
  client.on('close', end);
  upstream.on('close', end);
});
if (mode === 'unix-to-tcp') {
  rmSync(from, { force: true });
  server.listen(from, () => console.log(JSON.stringify({ listening: from })));
} else {
  const { host, port } = hostPort(from);
  server.listen(port, host, () => console.log(JSON.stringify({ listening: from })));
}
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
