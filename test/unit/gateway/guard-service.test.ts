import { X509Certificate, createPrivateKey } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { parseConfig, type Config } from '../../../src/config.js';
import { auditRepository } from '../../../src/db/audit.js';
import { certificateRepository } from '../../../src/db/certificates.js';
import { openDatabase, type Db } from '../../../src/db/open.js';
import { guardService, type GuardService } from '../../../src/gateway/guard-service.js';
import { testCa, testCaStore } from '../../support/ca.js';
import { expectWgoError } from '../../support/errors.js';
import { WHO } from '../../support/peer-env.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

const base = {
  stateDir: '/var/lib/wg-ollama', interface: 'wgo0', listenPort: 51820, subnet: '10.66.0.0/24',
  endpoint: 'vpn.example.com:51820', ollamaHost: '192.168.1.10', ollamaPort: 11434,
};
const configWith = (extra: object): Config => parseConfig({ ...base, ...extra }, 'test');

let db: Db;
let svc: GuardService;
let now: number;
beforeEach(() => {
  db = openDatabase(':memory:');
  now = Date.now();
  svc = guardService({ db, config: configWith({ sync: { listen: '192.0.2.1:8443' } }), ca: testCaStore(), clock: () => now });
});
afterEach(() => db.close());

const count = (table: string) => db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
const caCert = () => new X509Certificate(testCa().certPem);

describe('guardService.add', () => {
  test('a server certificate for the address and DNS names, signed by the CA, with its key', () => {
    const g = svc.add({ name: 'gpu1', address: '192.168.1.10', dnsNames: ['gpu1.example.com', 'ollama.lan'] }, WHO);
    const x = new X509Certificate(g.server.certPem);
    expect(x.verify(caCert().publicKey)).toBe(true);
    expect(x.checkIssued(caCert())).toBe(true);
    expect(x.checkPrivateKey(createPrivateKey(g.server.keyPem))).toBe(true);
    expect(x.subject).toContain('CN=gpu1');
    expect(x.subjectAltName).toBe('IP Address:192.168.1.10, DNS:gpu1.example.com, DNS:ollama.lan');
    expect(x.checkIP('192.168.1.10')).toBe('192.168.1.10');
    expect(x.checkHost('gpu1.example.com')).toBe('gpu1.example.com');
    expect(x.keyUsage).toEqual([SERVER_AUTH]);
    expect(x.ca).toBe(false);
    expect(x.serialNumber.toLowerCase().replace(/^0+/, '')).toBe(g.server.serial);
    expect(new Date(x.validTo).getTime()).toBeGreaterThan(now + 365 * 86_400_000);
  });

  test('a guard-role client certificate: CN guard:NAME, clientAuth, signed by the CA', () => {
    const g = svc.add({ name: 'gpu1', address: '192.168.1.10' }, WHO);
    const x = new X509Certificate(g.client.certPem);
    expect(x.verify(caCert().publicKey)).toBe(true);
    expect(x.checkPrivateKey(createPrivateKey(g.client.keyPem))).toBe(true);
    expect(x.subject).toContain('CN=guard:gpu1');
    expect(x.keyUsage).toEqual([CLIENT_AUTH]);
    expect(g.client.serial).not.toBe(g.server.serial);
    expect(g.client.keyPem).not.toBe(g.server.keyPem);
  });

  test('stores the guard and both certificates (public parts), audits, and hands out the CA and sync URL', () => {
    const g = svc.add({ name: 'gpu1', address: '192.168.1.10', dnsNames: ['gpu1.example.com'] }, WHO);
    expect(g.guard).toMatchObject({ name: 'gpu1', address: '192.168.1.10', dnsNames: ['gpu1.example.com'], createdAt: now, revokedAt: null });
    expect(g.caCertificate).toBe(testCa().certPem);
    expect(g.syncUrl).toBe('https://192.0.2.1:8443');
    const certs = certificateRepository(db);
    expect(certs.bySerial(g.server.serial)).toMatchObject({ role: 'guard-server', guardId: g.guard.id, peerId: null, commonName: 'gpu1', revokedAt: null, certPem: g.server.certPem });
    expect(certs.bySerial(g.client.serial)).toMatchObject({ role: 'guard-client', guardId: g.guard.id, commonName: 'guard:gpu1', revokedAt: null, certPem: g.client.certPem });
    const stored = db.prepare('SELECT cert_pem FROM certificates').pluck().all() as string[];
    expect(stored.join('')).not.toContain('PRIVATE KEY');
    expect(svc.list().map((r) => r.name)).toEqual(['gpu1']);
    expect(auditRepository(db).list({ since: 0 })).toMatchObject([
      { action: 'guard.add', target: 'gpu1', actor: 'root', details: { address: '192.168.1.10', dnsNames: ['gpu1.example.com'], server: g.server.serial, client: g.client.serial } },
    ]);
  });

  test('the sync URL is the configured url, else https://listen, else null without a sync API', () => {
    const withUrl = guardService({ db, config: configWith({ sync: { listen: '0.0.0.0:8443', url: 'https://gw.example.com:8443' } }), ca: testCaStore() });
    expect(withUrl.add({ name: 'a', address: '10.0.0.1' }, WHO).syncUrl).toBe('https://gw.example.com:8443');
    const none = guardService({ db, config: configWith({}), ca: testCaStore() });
    expect(none.add({ name: 'b', address: '10.0.0.2' }, WHO).syncUrl).toBeNull();
  });

  test('an IPv6 address is accepted', () => {
    const g = svc.add({ name: 'gpu6', address: 'fd00::10' }, WHO);
    expect(new X509Certificate(g.server.certPem).subjectAltName).toBe('IP Address:FD00:0:0:0:0:0:0:10');
  });

  test('a duplicate name is CONFLICT, also after the first was removed (names are never reused)', () => {
    svc.add({ name: 'gpu1', address: '192.168.1.10' }, WHO);
    const e = expectWgoError(() => svc.add({ name: 'gpu1', address: '192.168.1.11' }, WHO), 'CONFLICT');
    expect(e.message).toContain('gpu1');
    svc.remove('gpu1', WHO);
    expectWgoError(() => svc.add({ name: 'gpu1', address: '192.168.1.11' }, WHO), 'CONFLICT');
    expect(count('guards')).toBe(1);
    expect(count('certificates')).toBe(2);
  });

  test.each([
    ['address not an IP', { name: 'gpu1', address: 'gpu.example.com' }, /--address "gpu.example.com" is not an IP address/],
    ['address out of range', { name: 'gpu1', address: '10.0.0.256' }, /--address/],
    ['address empty', { name: 'gpu1', address: '' }, /--address/],
    ['dns with underscore', { name: 'gpu1', address: '10.0.0.1', dnsNames: ['bad_name.lan'] }, /--dns "bad_name.lan" is not a DNS name/],
    ['dns with a leading hyphen', { name: 'gpu1', address: '10.0.0.1', dnsNames: ['ok.lan', '-x.lan'] }, /--dns "-x.lan"/],
    ['dns with a wildcard', { name: 'gpu1', address: '10.0.0.1', dnsNames: ['*.lan'] }, /--dns/],
    ['bad name', { name: 'GPU 1', address: '10.0.0.1' }, /name/],
    ['the name of the in-process guard', { name: 'local', address: '10.0.0.1' }, /"local" is reserved/],
  ])('%s is BAD_INPUT and nothing is stored', (_what, input, message) => {
    const e = expectWgoError(() => svc.add(input, WHO), 'BAD_INPUT');
    expect(e.message).toMatch(message);
    expect(count('guards')).toBe(0);
    expect(count('certificates')).toBe(0);
    expect(count('audit_log')).toBe(0);
  });
});

describe('guardService.remove', () => {
  test('revokes both certificates and the guard, audits once, and is idempotent', () => {
    const g = svc.add({ name: 'gpu1', address: '192.168.1.10' }, WHO);
    const other = svc.add({ name: 'gpu2', address: '192.168.1.11' }, WHO);
    now = Date.now() + 1000;
    const r = svc.remove('gpu1', { actor: 'ops', source: 'web' });
    expect(r.changed).toBe(true);
    expect(r.guard).toMatchObject({ name: 'gpu1', revokedAt: now });
    const certs = certificateRepository(db);
    expect(certs.bySerial(g.server.serial)!.revokedAt).toBe(now);
    expect(certs.bySerial(g.client.serial)!.revokedAt).toBe(now);
    expect(certs.bySerial(other.client.serial)!.revokedAt).toBeNull();
    expect(certs.guardByName('gpu2')!.revokedAt).toBeNull();

    const removedAt = now;
    now += 1000;
    const again = svc.remove('gpu1', WHO);
    expect(again).toMatchObject({ changed: false, guard: { revokedAt: removedAt } });
    expect(certs.bySerial(g.client.serial)!.revokedAt).toBe(removedAt);
    const removes = auditRepository(db).list({ since: 0 }).filter((a) => a.action === 'guard.remove');
    expect(removes).toMatchObject([{ target: 'gpu1', actor: 'ops', source: 'web' }]);
  });

  test('an unknown guard is NOT_FOUND', () => {
    expectWgoError(() => svc.remove('nobody', WHO), 'NOT_FOUND');
  });
});
