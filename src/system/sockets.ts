import type { Server } from 'node:net';
import type { Socket } from 'node:net';

/**
 * Remembers every socket a server accepts, TLS handshakes in progress
 * included, so that closing it can end them all. `closeAllConnections()`
 * knows only sockets that already became HTTP connections: one accepted a
 * moment before close() finishes its handshake afterwards, is served, and
 * holds close() up (for a whole long-poll on the sync API).
 */
export function closeableServer(server: Server): { close(): Promise<void> } {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
