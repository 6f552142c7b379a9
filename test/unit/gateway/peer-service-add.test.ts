import { X509Certificate, createPrivateKey } from 'node:crypto';
import { statSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { generateKeyPair, publicKeyOf } from '../../../src/core/keys.js';
import { expectWgoError } from '../../support/errors.js';
import { DAY, peerEnv, T0, WHO, type PeerEnv } from '../../support/peer-env.js';

let env: PeerEnv;
beforeEach(() => {
  env = peerEnv();
});
afterEach(() => env.close());

describe('peerService.add', () => {
  test('allocates .2, .3, .4 in order', () => {
    const got = ['alice', 'bob', 'carol'].map((name) => env.svc.add({ name }, WHO).peer.address);
    expect(got).toEqual(['10.66.0.2', '10.66.0.3', '10.66.0.4']);
  });

  test('returns the peer, its private key and the exact client config', () => {
    const issued = env.svc.add({ name: 'alice' }, WHO);
    const row = env.rows()[0]!;
    const presharedKey = env.psk.read(row.pskRef!);
    expect(issued.peer).toEqual({
      id: row.id,
      name: 'alice',
      address: '10.66.0.2',
      publicKey: publicKeyOf(issued.privateKey!),
      status: 'active',
      createdAt: '2025-01-01T12:00:00.000Z',
      expiresAt: null,
      revokedAt: null,
      certificateSerial: issued.certificate.serial,
      policy: null,
    });
    expect(row.certSerial).toBe(issued.certificate.serial);
    expect(issued.config).toBe(
      `[Interface]
PrivateKey = ${issued.privateKey}
Address = 10.66.0.2/32

[Peer]
PublicKey = ${env.server.publicKey}
PresharedKey = ${presharedKey}
Endpoint = vpn.example.com:51820
AllowedIPs = 192.168.1.10/32
PersistentKeepalive = 25
`,
    );
  });

  test('issues a client certificate: CN = name, SAN IP = tunnel address, from our CA, valid until the expiry', () => {
    const issued = env.svc.add({ name: 'alice', expiresInMs: 30 * DAY }, WHO);
    const cert = new X509Certificate(issued.certificate.certPem);
    const ca = new X509Certificate(issued.caCertificate);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subject).toContain('CN=alice');
    expect(cert.subjectAltName).toBe('IP Address:10.66.0.2');
    expect(cert.checkPrivateKey(createPrivateKey(issued.certificate.keyPem))).toBe(true);
    expect(Date.parse(cert.validTo)).toBe(Math.floor((T0 + 30 * DAY) / 1000) * 1000);
    expect(BigInt(`0x${cert.serialNumber}`).toString(16)).toBe(issued.certificate.serial);
    expect(issued.certificate.serial.length).toBeGreaterThanOrEqual(32);
  });

  test('writes one 0600 PSK file per peer; the database holds only its reference', () => {
    env.svc.add({ name: 'alice' }, WHO);
    env.svc.add({ name: 'bob' }, WHO);
    const refs = env.rows().map((r) => `${r.pskRef}.psk`).sort();
    expect(env.pskFiles()).toEqual(refs);
    for (const r of env.rows()) {
      expect(statSync(env.psk.path(r.pskRef!)).mode & 0o777).toBe(0o600);
      expect(r.pskRef).toMatch(/^[0-9a-f]{24}$/);
    }
    expect(statSync(env.config.paths.pskDir).mode & 0o777).toBe(0o700);
  });

  test('with presharedKeys off: no PSK file, no PresharedKey line', () => {
    env.close();
    env = peerEnv({ presharedKeys: false, persistentKeepalive: 0 });
    const issued = env.svc.add({ name: 'alice' }, WHO);
    expect(env.rows()[0]!.pskRef).toBeNull();
    expect(env.pskFiles()).toEqual([]);
    expect(issued.config).not.toContain('PresharedKey');
    expect(issued.config).not.toContain('PersistentKeepalive');
  });

  test('records an audit row', () => {
    env.svc.add({ name: 'alice', expiresInMs: 30 * DAY }, { actor: 'ops', source: 'web 10.0.0.5' });
    expect(env.audit()).toEqual([
      {
        id: 1,
        at: T0,
        actor: 'ops',
        action: 'peer.add',
        target: 'alice',
        source: 'web 10.0.0.5',
        details: { address: '10.66.0.2', expiresAt: '2025-01-31T12:00:00.000Z', ownKey: false, certificate: env.rows()[0]!.certSerial },
      },
    ]);
  });

  test('expiry: active until the clock passes it, then expired (derived, not stored)', () => {
    env.svc.add({ name: 'alice', expiresInMs: DAY }, WHO);
    expect(env.svc.show('alice')).toMatchObject({ status: 'active', expiresAt: '2025-01-02T12:00:00.000Z' });
    env.now = T0 + DAY - 1;
    expect(env.svc.show('alice').status).toBe('active');
    env.now = T0 + DAY;
    expect(env.svc.show('alice').status).toBe('expired');
    expect(env.svc.list().map((p) => p.status)).toEqual(['expired']);
    expect(env.rows()[0]!.status).toBe('active');
  });

  test.each([[0], [-DAY], [Number.NaN]])('an expiry of %d ms is BAD_INPUT and writes nothing', (ms) => {
    expectWgoError(() => env.svc.add({ name: 'alice', expiresInMs: ms }, WHO), 'BAD_INPUT');
    expect(env.rows()).toEqual([]);
    expect(env.pskFiles()).toEqual([]);
  });

  test('a bad name is BAD_INPUT and writes nothing', () => {
    expectWgoError(() => env.svc.add({ name: '../x' }, WHO), 'BAD_INPUT');
    expect(env.pskFiles()).toEqual([]);
  });

  test('a duplicate name is CONFLICT: no row, no audit, no leftover PSK file', () => {
    env.svc.add({ name: 'alice' }, WHO);
    const files = env.pskFiles();
    const err = expectWgoError(() => env.svc.add({ name: 'alice' }, WHO), 'CONFLICT');
    expect(err.message).toBe('a peer named "alice" already exists');
    expect(env.rows()).toHaveLength(1);
    expect(env.audit()).toHaveLength(1);
    expect(env.pskFiles()).toEqual(files);
  });

  test('the name of a revoked peer can be used again, with a new address', () => {
    env.svc.add({ name: 'alice' }, WHO);
    env.svc.revoke('alice', WHO);
    expect(env.svc.add({ name: 'alice' }, WHO).peer.address).toBe('10.66.0.3');
  });

  test('a revoked peer’s address is never handed out again', () => {
    env.svc.add({ name: 'alice' }, WHO);
    env.svc.add({ name: 'bob' }, WHO);
    env.svc.revoke('alice', WHO);
    expect(env.svc.add({ name: 'carol' }, WHO).peer.address).toBe('10.66.0.4');
  });

  test('pool exhausted (/29 has 5 peer addresses): POOL_EXHAUSTED, no row, no leftover PSK file', () => {
    env.close();
    env = peerEnv({ subnet: '10.66.0.8/29' });
    const addrs = ['p1', 'p2', 'p3', 'p4', 'p5'].map((name) => env.svc.add({ name }, WHO).peer.address);
    expect(addrs).toEqual(['10.66.0.10', '10.66.0.11', '10.66.0.12', '10.66.0.13', '10.66.0.14']);
    const files = env.pskFiles();
    const err = expectWgoError(() => env.svc.add({ name: 'p6' }, WHO), 'POOL_EXHAUSTED');
    expect(err.message).toBe('no free address left in 10.66.0.8/29');
    expect(env.rows()).toHaveLength(5);
    expect(env.pskFiles()).toEqual(files);
    expect(env.audit()).toHaveLength(5);
  });
});

describe('peerService.add with --public-key', () => {
  test('a brought key: no private key returned, the config leaves the line to fill in', () => {
    const own = generateKeyPair();
    const issued = env.svc.add({ name: 'alice', publicKey: own.publicKey }, WHO);
    expect(issued.privateKey).toBeNull();
    expect(issued.peer.publicKey).toBe(own.publicKey);
    expect(issued.config).toMatch(/^\[Interface\]\n# PrivateKey = <the private key of the public key you registered>\nAddress = 10\.66\.0\.2\/32\n/);
    expect(issued.config).not.toContain(own.privateKey);
    expect(env.audit()[0]!.details).toMatchObject({ ownKey: true });
  });

  test('a malformed or low-order key is BAD_INPUT and writes nothing', () => {
    expectWgoError(() => env.svc.add({ name: 'alice', publicKey: 'abc' }, WHO), 'BAD_INPUT');
    expectWgoError(() => env.svc.add({ name: 'alice', publicKey: Buffer.alloc(32).toString('base64') }, WHO), 'BAD_INPUT');
    expect(env.rows()).toEqual([]);
    expect(env.pskFiles()).toEqual([]);
  });

  const reuse: [string, (e: PeerEnv) => string][] = [
    ['another peer’s key', (e) => e.svc.add({ name: 'bob' }, WHO).peer.publicKey],
    ['the server’s own key', (e) => e.server.publicKey],
    [
      'a key rotated away',
      (e) => {
        const old = e.svc.add({ name: 'bob' }, WHO).peer.publicKey;
        e.svc.rotate('bob', {}, WHO);
        return old;
      },
    ],
    [
      'a revoked peer’s key',
      (e) => {
        const old = e.svc.add({ name: 'bob' }, WHO).peer.publicKey;
        e.svc.revoke('bob', WHO);
        return old;
      },
    ],
  ];

  test.each(reuse)('%s is CONFLICT, with nothing left behind', (_what, setup) => {
    const key = setup(env);
    const rows = env.rows().length;
    const files = env.pskFiles();
    expectWgoError(() => env.svc.add({ name: 'alice', publicKey: key }, WHO), 'CONFLICT');
    expect(env.rows()).toHaveLength(rows);
    expect(env.pskFiles()).toEqual(files);
  });
});
