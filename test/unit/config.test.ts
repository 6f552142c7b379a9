import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { configFileFrom, DEFAULT_CONFIG_FILE, loadConfig, parseConfig } from '../../src/config.js';
import { expectWgoError } from '../support/errors.js';

const valid = {
  stateDir: '/var/lib/wg-ollama',
  interface: 'wgo0',
  listenPort: 51820,
  subnet: '10.66.0.0/24',
  endpoint: 'vpn.example.com:51820',
  ollamaHost: '192.168.1.10',
  ollamaPort: 11434,
};

describe('parseConfig', () => {
  test('a minimal config gets every default, the file name and the state paths, and is frozen', () => {
    const c = parseConfig(valid, '/etc/wg-ollama/config.json');
    expect(c).toEqual({
      ...valid,
      persistentKeepalive: 25,
      presharedKeys: true,
      wireguard: 'auto',
      wireguardGo: 'wireguard-go',
      reconcileIntervalSec: 3,
      monitorIntervalSec: 5,
      handshakeTimeoutSec: 180,
      trafficIntervalSec: 60,
      manageForwarding: true,
      certificateDays: 365,
      policy: {},
      logPrompts: false,
      metricsListen: '127.0.0.1:9477',
      admin: { listen: ['127.0.0.1:8443'], hosts: [], enrollMinutes: 15 },
      retention: { requests: '90d', connections: '30d', audit: '400d', maxDatabaseBytes: 2 * 1024 ** 3 },
      file: '/etc/wg-ollama/config.json',
      paths: {
        db: '/var/lib/wg-ollama/wg-ollama.db',
        serverKey: '/var/lib/wg-ollama/server.key',
        pskDir: '/var/lib/wg-ollama/psk',
        socket: '/var/lib/wg-ollama/control.sock',
        caCert: '/var/lib/wg-ollama/ca.crt',
        caKey: '/var/lib/wg-ollama/ca.key',
        tlsDir: '/var/lib/wg-ollama/tls',
        adminKey: '/var/lib/wg-ollama/admin.key',
      },
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  test('explicit values win over defaults', () => {
    const c = parseConfig({ ...valid, persistentKeepalive: 0, presharedKeys: false, wireguard: 'userspace' }, 'x');
    expect(c).toMatchObject({ persistentKeepalive: 0, presharedKeys: false, wireguard: 'userspace' });
  });

  test.each([
    'vpn.example.com:51820',
    '203.0.113.7:443',
    '[2001:db8::1]:51820',
    'gpu-gw:1',
    'a.b.c.example.org:65535',
  ])('accepts the endpoint %j', (endpoint) => {
    expect(parseConfig({ ...valid, endpoint }, 'x').endpoint).toBe(endpoint);
  });

  test.each([
    ['endpoint without port', { endpoint: 'vpn.example.com' }, 'endpoint: must be HOST:PORT'],
    ['endpoint with port 0', { endpoint: 'vpn.example.com:0' }, 'endpoint: must be HOST:PORT'],
    ['endpoint with port 70000', { endpoint: 'vpn.example.com:70000' }, 'endpoint: must be HOST:PORT'],
    ['endpoint with a bad IPv4', { endpoint: '300.1.1.1:51820' }, 'endpoint: must be HOST:PORT'],
    ['endpoint with a space', { endpoint: 'vpn example.com:51820' }, 'endpoint: must be HOST:PORT'],
    ['endpoint with a scheme', { endpoint: 'udp://vpn.example.com:51820' }, 'endpoint: must be HOST:PORT'],
    ['endpoint with unbracketed IPv6', { endpoint: '2001:db8::1:51820' }, 'endpoint: must be HOST:PORT'],
    ['ollamaHost inside the subnet', { ollamaHost: '10.66.0.50' }, 'ollamaHost: must not be inside the tunnel subnet'],
    ['ollamaHost not an address', { ollamaHost: 'gpu.local' }, 'ollamaHost: must be an IPv4 address'],
    ['subnet with host bits', { subnet: '10.66.0.1/24' }, 'subnet: subnet "10.66.0.1/24" has host bits set; did you mean 10.66.0.0/24?'],
    ['subnet /30', { subnet: '10.66.0.0/30' }, 'subnet: prefix must be between /16 and /29'],
    ['subnet /15', { subnet: '10.66.0.0/15' }, 'subnet: prefix must be between /16 and /29'],
    ['subnet not a CIDR', { subnet: '10.66.0.0' }, 'subnet: subnet "10.66.0.0" is not an IPv4 CIDR'],
    ['relative stateDir', { stateDir: 'var/lib/wg-ollama' }, 'stateDir: must be an absolute path'],
    ['interface name too long', { interface: 'a-very-long-iface0' }, 'interface: must be 1-15 characters'],
    ['interface name with a slash', { interface: 'wg/0' }, 'interface: must be 1-15 characters'],
    ['listenPort 0', { listenPort: 0 }, 'listenPort:'],
    ['ollamaPort as a string', { ollamaPort: '11434' }, 'ollamaPort:'],
    ['unknown wireguard mode', { wireguard: 'fast' }, 'wireguard:'],
    ['handshakeTimeoutSec too short', { handshakeTimeoutSec: 5 }, 'handshakeTimeoutSec:'],
    ['an unknown key', { listenPrt: 51820 }, '(top level): Unrecognized key: "listenPrt"'],
  ])('rejects %s, naming the field', (_what, change, message) => {
    const err = expectWgoError(() => parseConfig({ ...valid, ...change }, '/etc/x.json'), 'CONFIG_INVALID');
    expect(err.message).toContain('invalid config /etc/x.json: ');
    expect(err.message).toContain(message);
    expect(err.kind).toBe('bad-input');
  });

  test('every bad field is named in one message', () => {
    const err = expectWgoError(
      () => parseConfig({ ...valid, endpoint: 'nope', stateDir: 'rel', ollamaHost: '10.66.0.9' }, 'c.json'),
      'CONFIG_INVALID',
    );
    expect(err.message).toMatch(/stateDir: .*; endpoint: .*; ollamaHost: must not be inside/);
  });

  test('admin UI: management addresses and host names; never inside the tunnel subnet; null turns it off', () => {
    const c = parseConfig({ ...valid, admin: { listen: ['127.0.0.1:8443', '192.168.1.1:8443'], hosts: ['admin.example.com'], tls: { cert: '/etc/x.crt', key: '/etc/x.key' } } }, 'c.json');
    expect(c.admin).toEqual({ listen: ['127.0.0.1:8443', '192.168.1.1:8443'], hosts: ['admin.example.com'], tls: { cert: '/etc/x.crt', key: '/etc/x.key' }, enrollMinutes: 15 });
    expect(parseConfig({ ...valid, admin: null }, 'c.json').admin).toBeNull();
    const bad: [unknown, RegExp][] = [
      [{ listen: ['10.66.0.1:8443'] }, /admin\.listen\.0: must not be inside the tunnel subnet/],
      [{ listen: [] }, /admin\.listen/],
      [{ listen: ['localhost:8443'] }, /admin\.listen\.0: must be IP:PORT/],
      [{ hosts: ['evil.example/x'] }, /admin\.hosts\.0: must be a DNS name/],
      [{ tls: { cert: 'rel.crt', key: '/k' } }, /admin\.tls\.cert: must be an absolute path/],
      [{ enrollMinutes: 0 }, /admin\.enrollMinutes/],
      [{ listen: ['127.0.0.1:8443'], extra: 1 }, /admin/],
    ];
    for (const [admin, msg] of bad) expect(expectWgoError(() => parseConfig({ ...valid, admin }, 'c.json'), 'CONFIG_INVALID').message).toMatch(msg);
  });

  test('retention: ages of at least a day, a ceiling of at least 64 MiB, fields given alone keep the other defaults', () => {
    const c = parseConfig({ ...valid, retention: { requests: '2w', maxDatabaseBytes: 1024 ** 3 } }, 'c.json');
    expect(c.retention).toEqual({ requests: '2w', connections: '30d', audit: '400d', maxDatabaseBytes: 1024 ** 3 });
    const bad: [unknown, RegExp][] = [
      [{ requests: '12h' }, /retention\.requests: "12h" is shorter than a day/],
      [{ connections: '30 days' }, /retention\.connections: "30 days" is not a duration/],
      [{ audit: '0d' }, /retention\.audit: must be greater than zero/],
      [{ maxDatabaseBytes: 1024 }, /retention\.maxDatabaseBytes: must be at least 67108864 \(64 MiB\)/],
      [{ maxDatabaseBytes: 1.5e9 + 0.5 }, /retention\.maxDatabaseBytes/],
      [{ keep: '1d' }, /retention/],
    ];
    for (const [retention, msg] of bad) expect(expectWgoError(() => parseConfig({ ...valid, retention }, 'c.json'), 'CONFIG_INVALID').message).toMatch(msg);
  });

  test.each([[null], ['text'], [[valid]]])('rejects a non-object %j', (raw) => {
    expectWgoError(() => parseConfig(raw, 'c.json'), 'CONFIG_INVALID');
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgo-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('reads and validates a file', () => {
    const file = join(dir, 'ok.json');
    writeFileSync(file, JSON.stringify(valid));
    expect(loadConfig(file)).toMatchObject({ ...valid, file });
  });

  test('a missing file means not initialised', () => {
    const err = expectWgoError(() => loadConfig(join(dir, 'missing.json')), 'NOT_INITIALIZED');
    expect(err.message).toContain('run "wg-ollama init" first');
    expect(err.kind).toBe('unavailable');
  });

  test('invalid JSON is CONFIG_INVALID naming the file', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{"stateDir": "/x",');
    expect(expectWgoError(() => loadConfig(file), 'CONFIG_INVALID').message).toContain(`config ${file} is not valid JSON`);
  });

  test('a directory is CONFIG_INVALID (cannot read)', () => {
    expect(expectWgoError(() => loadConfig(dir), 'CONFIG_INVALID').message).toContain(`cannot read config ${dir}`);
  });

  test('valid JSON with a bad field is CONFIG_INVALID', () => {
    const file = join(dir, 'field.json');
    writeFileSync(file, JSON.stringify({ ...valid, subnet: '10.66.0.0/30' }));
    expect(expectWgoError(() => loadConfig(file), 'CONFIG_INVALID').message).toContain('subnet: prefix must be between');
  });
});

describe('configFileFrom', () => {
  test.each<[string | undefined, NodeJS.ProcessEnv, string]>([
    ['/a.json', { WG_OLLAMA_CONFIG: '/b.json' }, '/a.json'],
    [undefined, { WG_OLLAMA_CONFIG: '/b.json' }, '/b.json'],
    [undefined, {}, DEFAULT_CONFIG_FILE],
  ])('flag %j, env %j → %j', (flag, env, want) => {
    expect(configFileFrom(flag, env)).toBe(want);
  });
});
