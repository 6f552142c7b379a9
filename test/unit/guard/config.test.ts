import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { loadGuardConfig, parseGuardConfig } from '../../../src/guard/config.js';
import { expectWgoError } from '../../support/errors.js';

const TLS = { ca: 'ca.crt', cert: 'guard.crt', key: 'guard.key', syncCert: 'sync.crt', syncKey: 'sync.key' };
const BASE = { name: 'gpu1', listen: '192.168.1.10:11434', gatewayUrl: 'https://192.0.2.1:8443', tls: TLS };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-guardcfg-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, raw: unknown): string {
  const file = join(dir, name);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, typeof raw === 'string' ? raw : JSON.stringify(raw));
  return file;
}

describe('guard config paths', () => {
  test('relative paths are resolved against the config file directory, absolute ones kept', () => {
    const file = write('gpu1/guard.json', { ...BASE, tls: { ...TLS, ca: '../shared/ca.crt', syncKey: '/etc/keys/sync.key' } });
    const c = loadGuardConfig(file);
    const d = join(dir, 'gpu1');
    expect(c.tls).toEqual({
      ca: join(dir, 'shared/ca.crt'),
      cert: join(d, 'guard.crt'),
      key: join(d, 'guard.key'),
      syncCert: join(d, 'sync.crt'),
      syncKey: '/etc/keys/sync.key',
    });
    expect(c.stateDir).toBe(d);
    expect(c.file).toBe(file);
  });

  test('a relative stateDir is relative to the file; the config file itself may be named relative to the cwd', () => {
    const file = write('gpu1/guard.json', { ...BASE, stateDir: 'state' });
    const fromCwd = relative(process.cwd(), file);
    const c = loadGuardConfig(fromCwd);
    expect(c.stateDir).toBe(join(dir, 'gpu1', 'state'));
    expect(c.tls.ca).toBe(join(dir, 'gpu1', 'ca.crt'));
  });

  test('defaults: upstream on loopback, limits, metrics on 127.0.0.1:9478', () => {
    const c = parseGuardConfig(BASE, join(dir, 'guard.json'));
    expect(c).toMatchObject({ name: 'gpu1', listen: '192.168.1.10:11434', upstream: 'http://127.0.0.1:11434', gatewayUrl: 'https://192.0.2.1:8443', metricsListen: '127.0.0.1:9478' });
    expect(c.limits).toEqual({
      maxHeaderBytes: 16_384, maxBodyBytes: 8_388_608, headerTimeoutSec: 10, bodyTimeoutSec: 60, idleTimeoutSec: 300, maxRequestSec: 1800,
      keepAliveSec: 65, maxUpstreamRequests: 1024,
    });
    expect(parseGuardConfig({ ...BASE, metricsListen: null }, 'g.json').metricsListen).toBeNull();
    expect(Object.isFrozen(c)).toBe(true);
  });
});

describe('guard config validation', () => {
  test.each([
    ['an unknown top-level field', { ...BASE, extra: 1 }, '(top level): Unrecognized key: "extra"'],
    ['an unknown tls field', { ...BASE, tls: { ...TLS, password: 'x' } }, 'tls: Unrecognized key: "password"'],
    ['an unknown limits field', { ...BASE, limits: { maxBodyBytes: 2048, speed: 1 } }, 'limits: Unrecognized key: "speed"'],
    ['listen without a port', { ...BASE, listen: '192.168.1.10' }, 'listen: must be IP:PORT'],
    ['listen on a host name', { ...BASE, listen: 'gpu.lan:11434' }, 'listen: must be IP:PORT'],
    ['listen on a bad address', { ...BASE, listen: '300.1.1.1:11434' }, 'listen: must be IP:PORT'],
    ['listen on a bad port', { ...BASE, listen: '192.168.1.10:99999' }, 'listen: must be IP:PORT'],
    ['a plain-http gatewayUrl', { ...BASE, gatewayUrl: 'http://192.0.2.1:8443' }, 'gatewayUrl: must be an https:// URL'],
    ['a gatewayUrl that is no URL', { ...BASE, gatewayUrl: 'gateway:8443/x y' }, 'gatewayUrl:'],
    ['a missing gatewayUrl', (({ gatewayUrl: _g, ...r }) => r)(BASE), 'gatewayUrl:'],
    ['an https upstream', { ...BASE, upstream: 'https://127.0.0.1:11434' }, 'upstream: must be an http:// URL'],
    ['an empty certificate path', { ...BASE, tls: { ...TLS, cert: '' } }, 'tls.cert:'],
    ['a bad name', { ...BASE, name: 'GPU 1' }, 'name: must be a guard name'],
    ['a bad metricsListen', { ...BASE, metricsListen: ':9478' }, 'metricsListen: must be IP:PORT'],
  ])('%s is CONFIG_INVALID, naming the field', (_what, raw, message) => {
    const e = expectWgoError(() => parseGuardConfig(raw, '/etc/wg-ollama/guard.json'), 'CONFIG_INVALID');
    expect(e.message).toContain('invalid guard config /etc/wg-ollama/guard.json: ');
    expect(e.message).toContain(message);
  });

  test('every bad field is named at once', () => {
    const e = expectWgoError(() => parseGuardConfig({ ...BASE, listen: 'x', gatewayUrl: 'http://gw' }, 'g.json'), 'CONFIG_INVALID');
    expect(e.message).toMatch(/listen: .*; gatewayUrl: /);
  });

  test('a missing file is NOT_INITIALIZED and says how to make one; bad JSON is CONFIG_INVALID', () => {
    const missing = expectWgoError(() => loadGuardConfig(join(dir, 'nope.json')), 'NOT_INITIALIZED');
    expect(missing.message).toContain('wg-ollama add-guard');
    const bad = write('bad.json', '{"name": ');
    expect(expectWgoError(() => loadGuardConfig(bad), 'CONFIG_INVALID').message).toContain('is not valid JSON');
  });
});
