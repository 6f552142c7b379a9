import { chmodSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { ERROR_CODES, WgoError, type ErrorCode } from '../errors.js';

/**
 * The daemon's control socket (unix, mode 0600, in the state directory): the
 * CLI asks the running `serve` to reconcile right after committing a change,
 * and waits for the result. One JSON object per line each way.
 */
export type ControlHandler = (op: string) => Promise<unknown>;

export async function listenControl(path: string, handler: ControlHandler): Promise<Server> {
  // A socket file that answers belongs to a live daemon; one that doesn't is stale.
  try {
    await requestControl(path, 'ping', 1000);
    throw new WgoError('ALREADY_RUNNING', `another "wg-ollama serve" is running for ${path}`);
  } catch (e) {
    if (e instanceof WgoError && e.code === 'ALREADY_RUNNING') throw e;
    try {
      unlinkSync(path);
    } catch {
      /* no stale socket */
    }
  }
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > 4096) return sock.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let op = '';
      try {
        op = String((JSON.parse(buf.slice(0, nl)) as { op?: unknown }).op ?? '');
      } catch {
        /* answered as unknown below */
      }
      handler(op).then(
        (result) => sock.end(JSON.stringify({ ok: true, result }) + '\n'),
        // The code goes along, so the CLI answers a daemon's bad input or conflict as it would its own.
        (e: unknown) => sock.end(JSON.stringify({ ok: false, error: (e as Error).message, code: e instanceof WgoError ? e.code : 'INTERNAL' }) + '\n'),
      );
    });
  });
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(old);
  }
  chmodSync(path, 0o600);
  return server;
}

/** Sends one request to the daemon; DAEMON_UNREACHABLE when none answers in time. */
export function requestControl<T = unknown>(path: string, op: string, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new WgoError('DAEMON_UNREACHABLE', `wg-ollama serve did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify({ op }) + '\n'));
    sock.on('data', (c: string) => (buf += c));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(new WgoError('DAEMON_UNREACHABLE', `wg-ollama serve is not running (${(e as NodeJS.ErrnoException).code ?? e.message})`));
    });
    sock.on('end', () => {
      clearTimeout(timer);
      try {
        const msg = JSON.parse(buf) as { ok: boolean; result?: T; error?: string; code?: string };
        // A code this CLI does not know (a newer daemon) is INTERNAL.
        const code: ErrorCode = (ERROR_CODES as readonly string[]).includes(msg.code ?? '') ? (msg.code as ErrorCode) : 'INTERNAL';
        if (msg.ok) resolve(msg.result as T);
        else reject(new WgoError(code, `wg-ollama serve: ${msg.error ?? 'failed'}`));
      } catch {
        reject(new WgoError('DAEMON_UNREACHABLE', 'wg-ollama serve sent an unreadable answer'));
      }
    });
  });
}
