/**
 * `doctor --guard`, the audit lines: the spool written as the guard writes it,
 * free space, and the running guard's own word (its /healthz) — a guard that
 * cannot write its records fails the doctor with a line saying what follows.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { auditChecks } from '../../../src/cli/guard-doctor-audit.js';
import { parseGuardConfig } from '../../../src/guard/config.js';
import { openSpool } from '../../../src/guard/spool.js';

let dir: string;
let server: Server | null = null;
afterEach(async () => {
  server?.closeAllConnections();
  if (server) await new Promise((r) => server!.close(r));
  server = null;
  rmSync(dir, { recursive: true, force: true });
});

async function healthz(body: object): Promise<string> {
  server = createServer((_req, res) => res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify(body)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function config(metricsListen: string, auditFailure?: string) {
  return parseGuardConfig({
    name: 'gpu1', listen: '127.0.0.1:11434', gatewayUrl: 'https://127.0.0.1:7443', stateDir: dir, metricsListen,
    tls: { ca: 'ca.crt', cert: 'g.crt', key: 'g.key', syncCert: 's.crt', syncKey: 's.key' }, ...(auditFailure ? { auditFailure } : {}),
  }, join(dir, 'guard.json'));
}

test('a running guard that cannot write its records fails the check, naming the error and what the guard does meanwhile', async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-doctor-'));
  openSpool(join(dir, 'spool.db')).close();
  const listen = await healthz({ ok: false, lastError: 'cannot write request records to the spool: SQLITE_FULL: database or disk is full', audit: { ok: false, mode: 'refuse', buffered: 7 } });
  const checks = await auditChecks(config(listen));
  expect(checks.find((c) => c.check === 'spool')).toMatchObject({ status: 'ok' });
  expect(checks.find((c) => c.check === 'spool space')?.status).toMatch(/ok|warn/);
  const audit = checks.find((c) => c.check === 'guard audit')!;
  expect(audit.status).toBe('fail');
  expect(audit.detail).toMatch(/SQLITE_FULL.*answers every request 503.*7 records wait in memory/);
});

test('a guard that writes its records passes; no spool yet is a warning', async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-doctor-'));
  const listen = await healthz({ ok: true, lastError: null, audit: { ok: true, mode: 'serve', buffered: 0 } });
  const checks = await auditChecks(config(listen, 'serve'));
  expect(checks.find((c) => c.check === 'spool')).toMatchObject({ status: 'warn' });
  expect(checks.find((c) => c.check === 'guard audit')).toMatchObject({ status: 'ok', detail: expect.stringMatching(/auditFailure "serve"/) });
});

test('a spool at 80 % of spool.maxBytes or more is warned about, naming what happens at the ceiling', async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-doctor-'));
  const spool = openSpool(join(dir, 'spool.db'), { maxBytes: 16 * 1024 * 1024 });
  const body = 'x'.repeat(4000);
  for (let i = 0; i < 40; i++) spool.append(Array.from({ length: 100 }, () => ({ body }) as never));
  const used = spool.size().usedBytes;
  spool.close();
  const listen = await healthz({ ok: true, lastError: null, audit: { ok: true, mode: 'refuse', buffered: 0 } });
  const at = (maxBytes: number) => ({ ...config(listen), spool: { maxBytes } });
  expect((await auditChecks(at(Math.ceil(used / 0.79)))).find((c) => c.check === 'spool fill')).toMatchObject({ status: 'ok' });
  const near = (await auditChecks(at(Math.floor(used / 0.8)))).find((c) => c.check === 'spool fill')!;
  expect(near.status).toBe('warn');
  expect(near.detail).toMatch(/not reaching the gateway; at the ceiling the guard answers every request 503/);
});
