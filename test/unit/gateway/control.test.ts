import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { listenControl, requestControl } from '../../../src/gateway/control.js';
import { isWgoError, WgoError } from '../../../src/errors.js';

let dir: string;
let sock: string;
const servers: Server[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-ctl-'));
  sock = join(dir, 'control.sock');
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  rmSync(dir, { recursive: true, force: true });
});

const listen = async (handler: (op: string) => Promise<unknown>): Promise<Server> => {
  const s = await listenControl(sock, handler);
  servers.push(s);
  return s;
};

async function failure(p: Promise<unknown>): Promise<WgoError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof WgoError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

describe('control socket', () => {
  test('answers a request with the handler’s result; the socket is 0600', async () => {
    await listen(async (op) => ({ echo: op }));
    expect(await requestControl(sock, 'reconcile')).toEqual({ echo: 'reconcile' });
    expect(statSync(sock).mode & 0o777).toBe(0o600);
  });

  test('a handler error comes back as INTERNAL with its message', async () => {
    await listen(async (op) => {
      throw new Error(`unknown control operation "${op}"`);
    });
    const err = await failure(requestControl(sock, 'bogus'));
    expect(err.code).toBe('INTERNAL');
    expect(err.message).toBe('wg-ollama serve: unknown control operation "bogus"');
  });

  test('a WgoError in the daemon keeps its code (and so its kind and exit code) across the socket', async () => {
    await listen(async () => {
      throw new WgoError('CONFLICT', 'peer "alice" is revoked');
    });
    const err = await failure(requestControl(sock, 'reconcile'));
    expect(err.code).toBe('CONFLICT');
    expect(err.kind).toBe('conflict');
    expect(err.message).toBe('wg-ollama serve: peer "alice" is revoked');
  });

  test('a code the CLI does not know (a newer daemon) is INTERNAL', async () => {
    await listen(async () => {
      throw Object.assign(new WgoError('INTERNAL', 'x'), { code: 'SOMETHING_NEW' });
    });
    expect((await failure(requestControl(sock, 'reconcile'))).code).toBe('INTERNAL');
  });

  test('nobody listening is DAEMON_UNREACHABLE', async () => {
    expect((await failure(requestControl(sock, 'ping', 500))).code).toBe('DAEMON_UNREACHABLE');
  });

  test('a second daemon on the same socket is ALREADY_RUNNING', async () => {
    await listen(async () => ({ pid: 1 }));
    const err = await failure(listenControl(sock, async () => null));
    expect(isWgoError(err, 'ALREADY_RUNNING')).toBe(true);
    expect(await requestControl(sock, 'ping')).toEqual({ pid: 1 });
  });

  test('a stale socket file is replaced', async () => {
    writeFileSync(sock, '');
    await listen(async () => 'fresh');
    expect(await requestControl(sock, 'ping')).toBe('fresh');
  });
});
