/**
 * An existing deployment (a CA without name constraints, peers and guards
 * issued) gains name constraints with `reissue-ca`: every live certificate in
 * the database keeps verifying (openssl verify), a revoked guard's address is
 * not kept, add-guard outside the constraints is refused and changes nothing,
 * and ca.permit + reissue-ca lets it in.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { parseConfig, type Config, type ConfigInput } from '../../../src/config.js';
import { generateKeyPair } from '../../../src/core/keys.js';
import { auditRepository } from '../../../src/db/audit.js';
import { certificateRepository } from '../../../src/db/certificates.js';
import { openDatabase, type Db } from '../../../src/db/open.js';
import { caConstraintProblem, caReissueService, coverConfigNames } from '../../../src/gateway/ca-reissue.js';
import { caStore } from '../../../src/gateway/ca-store.js';
import { guardService } from '../../../src/gateway/guard-service.js';
import { peerService } from '../../../src/gateway/peer-service.js';
import { pskStore } from '../../../src/gateway/psk-store.js';
import { certificateInfo, issueCertificate } from '../../../src/pki/ca.js';
import { permittedForConfig } from '../../../src/core/ca-names.js';
import { caNameConstraints } from '../../../src/pki/ca-reissue.js';
import { expectWgoError } from '../../support/errors.js';

const WHO = { actor: 'root', source: 'cli' };
let dir: string;
let db: Db;

const BASE = {
  interface: 'wgo0', listenPort: 51820, subnet: '10.66.0.0/24', endpoint: 'vpn.example.com:51820',
  ollamaHost: '192.168.50.10', ollamaPort: 11434, sync: { listen: '192.168.50.1:8443' },
};
const configWith = (extra: Partial<ConfigInput> = {}): Config => parseConfig({ ...BASE, stateDir: dir, ...extra }, 'test');

function services(config: Config) {
  const ca = caStore(config.paths);
  return {
    ca,
    guards: guardService({ db, config, ca }),
    peers: peerService({ db, config, serverPublicKey: generateKeyPair().publicKey, psk: pskStore(config.paths.pskDir), ca }),
    reissue: caReissueService({ db, config, ca }),
  };
}

function verify(pem: string): string {
  const leaf = join(dir, `leaf-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(leaf, pem);
  try {
    execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), leaf], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return 'OK';
  } catch (e) {
    return /error \d+ at \d+ depth lookup: (.*)/.exec(`${(e as { stdout?: string }).stdout}`)?.[1] ?? String(e);
  }
}

/** A peer certificate as releases before name constraints made it: CN bob.laptop, no DNS name. */
function legacyPeerCert(caKeyPem: string): string {
  const key = join(dir, 'legacy.key');
  const csr = join(dir, 'legacy.csr');
  const caKeyFile = join(dir, 'legacy-ca.key');
  writeFileSync(caKeyFile, caKeyPem, { mode: 0o600 });
  execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-new', '-key', key, '-subj', '/CN=bob.laptop/O=wg-ollama/OU=peer', '-addext', 'subjectAltName=IP:10.66.0.3', '-out', csr], { stdio: 'ignore' });
  const pem = execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', join(dir, 'ca.crt'), '-CAkey', caKeyFile, '-days', '30', '-copy_extensions', 'copy'], { encoding: 'utf8' });
  rmSync(caKeyFile);
  return pem;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-reissue-gw-'));
  db = openDatabase(':memory:');
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('reissue-ca on a deployment made before name constraints', () => {
  test('every live certificate keeps verifying, a revoked guard is not kept, and a second run changes nothing', () => {
    const config = configWith();
    const s = services(config);
    const old = s.ca.ensure().ca; // no `permitted`: a CA as older releases made it
    expect(caNameConstraints(old.certPem)).toBeNull();
    expect(caConstraintProblem(config, old.certPem)).toMatch(/no name constraints.*reissue-ca/);

    const alice = s.peers.add({ name: 'alice' }, WHO);
    const carol = s.peers.add({ name: 'carol.phone' }, WHO);
    const gpu2 = s.guards.add({ name: 'gpu2', address: '192.168.77.5', dnsNames: ['gpu2.lab.example'] }, WHO);
    s.guards.add({ name: 'gpu3', address: '192.168.88.8' }, WHO);
    s.guards.remove('gpu3', WHO);
    const legacy = legacyPeerCert(old.keyPem);
    const info = certificateInfo(legacy);
    certificateRepository(db).insert({ serial: info.serial, role: 'peer', peerId: null, guardId: null, commonName: 'bob.laptop', notBefore: info.notBefore.getTime(), notAfter: info.notAfter.getTime(), issuedAt: Date.now(), certPem: legacy });
    const live = [alice.certificate.certPem, carol.certificate.certPem, gpu2.server.certPem, gpu2.client.certPem, legacy];

    const plan = s.reissue.plan();
    expect(plan.current).toBeNull();
    expect(plan.changes).toBe(true);
    expect(plan.keptForCertificates).toEqual(['192.168.77.5', 'gpu2.lab.example']);
    expect(plan.legacyCommonNames).toEqual(['bob.laptop']);
    expect(plan.permitted.ip).not.toContain('192.168.88.8/32');
    expect(readFileSync(config.paths.caCert, 'utf8')).toBe(old.certPem); // plan() changes nothing

    const done = s.reissue.reissue(WHO);
    expect(done.fingerprint256).not.toBe(done.previousFingerprint256);
    const now = readFileSync(config.paths.caCert, 'utf8');
    expect(caNameConstraints(now)).toEqual({ ...plan.permitted, other: 0 });
    expect(readFileSync(config.paths.caKey, 'utf8')).toBe(old.keyPem + now);
    for (const pem of live) expect(verify(pem)).toBe('OK');
    expect(caConstraintProblem(config, now)).toBeNull();
    expect(auditRepository(db).list({ since: 0 }).filter((a) => a.action === 'ca.reissue')).toHaveLength(1);

    // New certificates from the same services use the re-issued CA at once.
    const dave = s.peers.add({ name: 'dave.desk' }, WHO);
    expect(dave.caCertificate).toBe(now);
    expect(verify(dave.certificate.certPem)).toBe('OK');

    const again = s.reissue.reissue(WHO);
    expect(again.changes).toBe(false);
    expect(readFileSync(config.paths.caCert, 'utf8')).toBe(now);
    expect(auditRepository(db).list({ since: 0 }).filter((a) => a.action === 'ca.reissue')).toHaveLength(1);
  });
});

describe('names not known when the CA was made', () => {
  test('add-guard outside the constraints is refused and changes nothing; ca.permit + reissue-ca lets it in', () => {
    const config = configWith();
    const s = services(config);
    caStore(config.paths, { permitted: { ip: ['10.66.0.0/24', '192.168.50.10/32'], dns: ['wg-ollama.invalid'], email: ['wg-ollama.invalid'] } }).ensure();
    const count = (t: string) => db.prepare(`SELECT count(*) FROM ${t}`).pluck().get() as number;
    const before = [count('guards'), count('certificates'), count('audit_log')];

    for (const attempt of [{ address: '192.168.99.7' }, { address: '192.168.50.10', dnsNames: ['gpu.lab.example'] }]) {
      const err = expectWgoError(() => s.guards.add({ name: 'gpu9', ...attempt }, WHO), 'BAD_INPUT');
      expect(err.message).toMatch(/outside the CA.s name constraints.*"ca": {"permit".*reissue-ca/);
    }
    expect([count('guards'), count('certificates'), count('audit_log')]).toEqual(before);

    // The admin lists the guard network in the config and re-issues.
    const wider = configWith({ ca: { permit: ['192.168.99.0/24', '.lab.example'] } });
    expect(caConstraintProblem(wider, readFileSync(wider.paths.caCert, 'utf8'))).toMatch(/192\.168\.99\.0\/24.*\.lab\.example.*reissue-ca/);
    const w = services(wider);
    w.reissue.reissue(WHO);
    const g = w.guards.add({ name: 'gpu9', address: '192.168.99.7', dnsNames: ['gpu9.lab.example'] }, WHO);
    expect(verify(g.server.certPem)).toBe('OK');
    expect(verify(g.client.certPem)).toBe('OK');
    expect(existsSync(join(dir, 'ca.crt'))).toBe(true);
  });
});

describe('serve start (coverConfigNames)', () => {
  test('a config edited after init (new admin host and address) gets a CA that covers it; an unconstrained CA is left alone', () => {
    const atInit = configWith();
    const made = caStore(atInit.paths, { permitted: permittedForConfig(atInit) }).ensure().ca;
    expect(coverConfigNames({ db, config: atInit, ca: caStore(atInit.paths) }, WHO)).toEqual({ unconstrained: false, reissued: [] });
    expect(readFileSync(atInit.paths.caCert, 'utf8')).toBe(made.certPem);

    const edited = configWith({ admin: { listen: ['192.168.50.1:9443'], hosts: ['admin.lab.test'] } });
    const store = caStore(edited.paths);
    const issueAdmin = () => issueCertificate(store.load()!, { role: 'gateway-server', commonName: 'wg-ollama admin', ipAddresses: ['192.168.50.1'], dnsNames: ['localhost', 'admin.lab.test'], notAfter: new Date(Date.now() + 86_400_000) });
    expectWgoError(issueAdmin, 'BAD_INPUT');
    expect(coverConfigNames({ db, config: edited, ca: store }, WHO)).toEqual({ unconstrained: false, reissued: ['admin.lab.test'] });
    expect(verify(issueAdmin().certPem)).toBe('OK');
    expect(caConstraintProblem(edited, readFileSync(edited.paths.caCert, 'utf8'))).toBeNull();
  });

  test('a CA without constraints stays as it is (reissue-ca is the explicit re-key)', () => {
    const config = configWith();
    const old = caStore(config.paths).ensure().ca;
    expect(coverConfigNames({ db, config, ca: caStore(config.paths) }, WHO)).toEqual({ unconstrained: true, reissued: [] });
    expect(readFileSync(config.paths.caCert, 'utf8')).toBe(old.certPem);
  });
});
