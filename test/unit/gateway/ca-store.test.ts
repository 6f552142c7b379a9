import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { caStore } from '../../../src/gateway/ca-store.js';
import { caNameConstraints, reissueCa } from '../../../src/pki/ca-reissue.js';
import { expectWgoError } from '../../support/errors.js';

const PERMITTED = { ip: ['10.66.0.0/24'], dns: ['wg-ollama.invalid'], email: ['wg-ollama.invalid'] };

// The race needs something to happen between a store finding no CA and it
// linking its new one into place; CA creation is that moment. The hook lets a
// test run "the other process" there. Everything else is the real createCa.
const hook = vi.hoisted(() => ({ beforeCreate: null as (() => void) | null, created: 0 }));
vi.mock('../../../src/pki/ca.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/pki/ca.js')>();
  return {
    ...real,
    createCa: (opts: Parameters<typeof real.createCa>[0]) => {
      const run = hook.beforeCreate;
      hook.beforeCreate = null;
      run?.();
      hook.created++;
      return real.createCa(opts);
    },
  };
});

let dir: string;
let paths: { caKey: string; caCert: string };
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-ca-'));
  paths = { caKey: join(dir, 'ca.key'), caCert: join(dir, 'ca.crt') };
  hook.beforeCreate = null;
  hook.created = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mode = (p: string) => statSync(p).mode & 0o777;
const blocks = (text: string) => text.match(/-----BEGIN ([A-Z ]+)-----/g) ?? [];

describe('caStore', () => {
  test('nothing there: load() is null and no file is made', () => {
    expect(caStore(paths).load()).toBeNull();
    expect(readdirSync(dir)).toEqual([]);
  });

  test('ensure() creates the CA once: ca.key 0600 with key and certificate, ca.crt the public copy', () => {
    const store = caStore(paths, { commonName: 'Test CA' });
    const first = store.ensure();
    expect(first.created).toBe(true);
    expect(mode(paths.caKey)).toBe(0o600);
    const keyFile = readFileSync(paths.caKey, 'utf8');
    expect(blocks(keyFile)).toEqual(['-----BEGIN PRIVATE KEY-----', '-----BEGIN CERTIFICATE-----']);
    expect(keyFile).toBe(first.ca.keyPem + first.ca.certPem);
    const pub = readFileSync(paths.caCert, 'utf8');
    expect(pub).toBe(first.ca.certPem);
    expect(pub).not.toContain('PRIVATE KEY');
    expect(mode(paths.caCert) & 0o022).toBe(0);
    const x = new X509Certificate(pub);
    expect(x.ca).toBe(true);
    expect(x.subject).toContain('CN=Test CA');
    expect(x.checkPrivateKey(createPrivateKey(first.ca.keyPem))).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['ca.crt', 'ca.key']);

    const again = store.ensure();
    expect(again).toEqual({ ca: first.ca, created: false });
    expect(hook.created).toBe(1);
  });

  test('a second store on the same paths loads the same CA without making one', () => {
    const made = caStore(paths).ensure().ca;
    const other = caStore(paths);
    expect(other.load()).toEqual(made);
    expect(other.ensure()).toEqual({ ca: made, created: false });
    expect(hook.created).toBe(1);
  });

  test('ensure() puts back a missing ca.crt from ca.key', () => {
    const made = caStore(paths).ensure().ca;
    unlinkSync(paths.caCert);
    expect(caStore(paths).ensure()).toEqual({ ca: made, created: false });
    expect(readFileSync(paths.caCert, 'utf8')).toBe(made.certPem);
  });

  test('two racing ensure() calls end with one CA: the loser uses the winner\'s', () => {
    const a = caStore(paths);
    const b = caStore(paths);
    let winner: ReturnType<typeof a.ensure> | undefined;
    // b finds no CA, and while it makes its own, a creates and links one.
    hook.beforeCreate = () => {
      winner = a.ensure();
    };
    const loser = b.ensure();
    expect(hook.created).toBe(2);
    expect(winner!.created).toBe(true);
    expect(loser.created).toBe(false);
    expect(loser.ca).toEqual(winner!.ca);
    expect(readFileSync(paths.caKey, 'utf8')).toBe(winner!.ca.keyPem + winner!.ca.certPem);
    expect(readFileSync(paths.caCert, 'utf8')).toBe(winner!.ca.certPem);
    expect(b.load()).toEqual(winner!.ca);
    expect(readdirSync(dir).sort()).toEqual(['ca.crt', 'ca.key']); // no temporary file left behind
  });

  test('a CA file written by someone else between check and create is used, not overwritten', () => {
    const b = caStore(paths);
    const theirs = { keyPem: '', certPem: '' };
    hook.beforeCreate = () => {
      const made = caStore({ caKey: join(dir, 'elsewhere.key'), caCert: join(dir, 'elsewhere.crt') }).ensure().ca;
      Object.assign(theirs, made);
      writeFileSync(paths.caKey, made.keyPem + made.certPem, { mode: 0o600, flag: 'wx' });
    };
    const r = b.ensure();
    expect(r).toEqual({ ca: theirs, created: false });
    expect(existsSync(paths.caCert)).toBe(true);
    expect(readFileSync(paths.caCert, 'utf8')).toBe(theirs.certPem);
  });

  test('a ca.key without a certificate is an error, not a new CA', () => {
    writeFileSync(paths.caKey, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', { mode: 0o600 });
    expect(() => caStore(paths).ensure()).toThrow(/does not hold a CA key and certificate/);
    expect(hook.created).toBe(0);
  });

  test('ensure() makes a new CA with the name constraints it is given', () => {
    const { ca } = caStore(paths, { permitted: PERMITTED }).ensure();
    expect(caNameConstraints(ca.certPem)).toEqual({ ...PERMITTED, other: 0 });
    expect(caNameConstraints(readFileSync(paths.caCert, 'utf8'))).toEqual({ ...PERMITTED, other: 0 });
  });

  test('replaceCertificate() puts a re-issued certificate in ca.key and ca.crt, and every store sees it at its next load', () => {
    const store = caStore(paths);
    const made = store.ensure().ca;
    const other = caStore(paths);
    expect(other.load()).toEqual(made); // cached now
    const next = reissueCa(made, PERMITTED);
    expect(store.replaceCertificate(next)).toEqual({ keyPem: made.keyPem, certPem: next });
    expect(readFileSync(paths.caKey, 'utf8')).toBe(made.keyPem + next);
    expect(readFileSync(paths.caCert, 'utf8')).toBe(next);
    expect(mode(paths.caKey)).toBe(0o600);
    expect(other.load()).toEqual({ keyPem: made.keyPem, certPem: next });
    expect(other.ensure()).toEqual({ ca: { keyPem: made.keyPem, certPem: next }, created: false });
    expect(readdirSync(dir).sort()).toEqual(['ca.crt', 'ca.key']);
  });

  test('replaceCertificate() refuses a certificate for another key and changes nothing', () => {
    const store = caStore(paths);
    store.ensure();
    const before = [readFileSync(paths.caKey, 'utf8'), readFileSync(paths.caCert, 'utf8')];
    const foreign = caStore({ caKey: join(dir, 'x.key'), caCert: join(dir, 'x.crt') }).ensure().ca;
    expectWgoError(() => store.replaceCertificate(foreign.certPem), 'BAD_INPUT');
    expectWgoError(() => store.replaceCertificate('not a certificate'), 'BAD_INPUT');
    expect([readFileSync(paths.caKey, 'utf8'), readFileSync(paths.caCert, 'utf8')]).toEqual(before);
  });

  test('a replacement that cannot be written part-way changes nothing and leaves no temporary file', () => {
    const store = caStore(paths);
    const made = store.ensure().ca;
    // ca.crt's directory is gone: the second temporary file cannot be written.
    const broken = caStore({ caKey: paths.caKey, caCert: join(dir, 'missing', 'ca.crt') });
    expectWgoError(() => broken.replaceCertificate(reissueCa(made, PERMITTED)), 'EXEC_FAILED');
    expect(readFileSync(paths.caKey, 'utf8')).toBe(made.keyPem + made.certPem);
    expect(readFileSync(paths.caCert, 'utf8')).toBe(made.certPem);
    expect(readdirSync(dir).sort()).toEqual(['ca.crt', 'ca.key']);
  });
});
