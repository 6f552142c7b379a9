/**
 * The connect verb end to end in process: the profile file (shape, keys,
 * mode), --check against the real guard (accepted, revoked, unreachable,
 * expiring), and start-up (port in use, non-loopback without consent,
 * warnings).
 */
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConnectProfile, renderConnectProfile } from '../../../src/core/connect-profile.js';
import { checkConnect, renderCheck } from '../../../src/connect/check.js';
import { loadConnectProfile } from '../../../src/connect/profile.js';
import { runConnect } from '../../../src/connect/run.js';
import { parseConnectListen } from '../../../src/core/connect.js';
import { WgoError } from '../../../src/errors.js';
import { createCa, issueCertificate } from '../../../src/pki/ca.js';
import { DAY_MS, startEnv, type GuardEnv } from '../../support/guard-env.js';
import { profileFor, writeProfile } from '../../support/connect-env.js';
import { expectWgoError } from '../../support/errors.js';

let env: GuardEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

const io = () => {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) } };
};

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('the connect profile', () => {
  it('round-trips and tells the serial (as show-peer prints it, also when it starts with a zero) and end of the certificate', () => {
    for (let i = 0; i < 40; i++) {
      const c = issueCertificate(env.ca, { role: 'peer', commonName: 'x', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + DAY_MS) });
      const text = renderConnectProfile({ peer: 'x', guardUrl: 'https://127.0.0.1:1', ca: env.ca.certPem, certificate: c.certPem, key: c.keyPem });
      expect(parseConnectProfile(JSON.parse(text)).serial).toBe(c.serial);
    }
    const p = parseConnectProfile(JSON.parse(profileFor(env, 'alice')));
    expect(p).toMatchObject({ wgOllamaConnect: 1, peer: 'alice', guardUrl: `https://127.0.0.1:${env.port}`, serial: env.certs.get('alice')!.serial });
    expect(Math.abs(p.notAfter - (Date.now() + 30 * DAY_MS))).toBeLessThan(2 * DAY_MS);
  });

  it.each([
    ['another JSON file', () => ({ name: 'x' }), /not a wg-ollama connect profile: wgOllamaConnect/],
    ['an http guard URL', (p: Record<string, string>) => ({ ...p, guardUrl: 'http://10.0.0.1:11434' }), /guardUrl: must be https/],
    ['a guard URL with a path', (p: Record<string, string>) => ({ ...p, guardUrl: 'https://10.0.0.1:11434/api' }), /guardUrl: must be https/],
    ['an extra field', (p: Record<string, string>) => ({ ...p, extra: 1 }), /not a wg-ollama connect profile/],
    ["bob's key with alice's certificate", (p: Record<string, string>) => ({ ...p, key: env.certs.get('bob')!.keyPem }), /private key does not belong/],
    ['a certificate from another CA', (p: Record<string, string>) => ({ ...p, ca: createCa({ commonName: 'other' }).certPem }), /not issued by its CA/],
    ['a broken certificate', (p: Record<string, string>) => ({ ...p, certificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }), /client certificate does not parse/],
  ])('refuses %s', (_what, change, re) => {
    const base = JSON.parse(profileFor(env, 'alice')) as Record<string, string>;
    expect(expectWgoError(() => parseConnectProfile(change(base)), 'BAD_INPUT').message).toMatch(re);
  });

  it('a profile others can read is refused with the chmod that fixes it; Windows is not checked', () => {
    const file = writeProfile(profileFor(env, 'alice'), 0o644);
    expect(() => loadConnectProfile(file)).toThrow(/can be read by other users .*chmod 600/);
    expect(loadConnectProfile(file, 'win32').peer).toBe('alice');
  });

  it('a missing file and a non-JSON file are bad input with a clear message', () => {
    expect(() => loadConnectProfile('/nonexistent/alice.connect.json')).toThrow(/cannot read the connect profile/);
    const file = writeProfile('[Interface]\nPrivateKey = x\n');
    expect(() => loadConnectProfile(file)).toThrow(/not a wg-ollama connect profile \(not JSON\)/);
    expect(expectWgoError(() => loadConnectProfile(file), 'BAD_INPUT').kind).toBe('bad-input');
  });
});

describe('connect --check', () => {
  const listen = () => parseConnectListen('127.0.0.1:0')!;

  it('all good: the guard accepts the certificate and Ollama answers', async () => {
    const r = await checkConnect(loadConnectProfile(writeProfile(profileFor(env, 'alice'))), listen(), Date.now());
    expect(r).toMatchObject({ ok: true, peer: 'alice', certificate: { expired: false, warning: null }, guard: { reachable: true, accepted: true, status: 200, version: '0.12.6' }, listen: { free: true } });
    expect(renderCheck(r)).toMatch(/^ok {3}certificate accepted \(Ollama 0\.12\.6\)$/m);
  });

  it('revoked: reachable, but the certificate is no longer accepted', async () => {
    env.guard.setPeers(env.peerSet({ without: ['alice'] }));
    try {
      const r = await checkConnect(loadConnectProfile(writeProfile(profileFor(env, 'alice'))), listen(), Date.now());
      expect(r).toMatchObject({ ok: false, guard: { reachable: true, accepted: false, status: 401 } });
      expect(r.guard.error).toMatch(/the guard does not accept this certificate: client certificate is revoked/);
      expect(renderCheck(r)).toMatch(/^FAIL the guard does not accept this certificate/m);
    } finally {
      env.guard.setPeers(env.peerSet());
    }
  });

  it('guard unreachable: says so and suggests the tunnel', async () => {
    const port = await freePort();
    const r = await checkConnect(loadConnectProfile(writeProfile(profileFor(env, 'alice', `https://127.0.0.1:${port}`))), listen(), Date.now());
    expect(r).toMatchObject({ ok: false, guard: { reachable: false, accepted: false } });
    expect(r.guard.error).toMatch(/refused the connection/);
  });

  it('a certificate expiring within 14 days is a warning; an expired one fails', async () => {
    const soon = issueCertificate(env.ca, { role: 'peer', commonName: 'alice', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 3 * DAY_MS) });
    const text = renderConnectProfile({ peer: 'alice', guardUrl: `https://127.0.0.1:${env.port}`, ca: env.ca.certPem, certificate: soon.certPem, key: soon.keyPem });
    const p = loadConnectProfile(writeProfile(text));
    const r = await checkConnect(p, listen(), Date.now());
    expect(r.certificate).toMatchObject({ expired: false, warning: expect.stringMatching(/expires in 2 days/) });
    const later = await checkConnect(p, listen(), Date.now() + 4 * DAY_MS);
    expect(later).toMatchObject({ ok: false, certificate: { expired: true } });
  });

  it('the exit code follows the report, --json prints it', async () => {
    const ok = io();
    expect(await runConnect(writeProfile(profileFor(env, 'alice')), { check: true, json: true, listen: '127.0.0.1:0' }, ok.io)).toBe(0);
    expect(JSON.parse(ok.out.join(''))).toMatchObject({ ok: true, peer: 'alice' });
    env.guard.setPeers(env.peerSet({ without: ['alice'] }));
    try {
      const bad = io();
      expect(await runConnect(writeProfile(profileFor(env, 'alice')), { check: true, listen: '127.0.0.1:0' }, bad.io)).toBe(1);
      expect(bad.out.join('')).toMatch(/FAIL the guard does not accept this certificate/);
    } finally {
      env.guard.setPeers(env.peerSet());
    }
  });
});

describe('connect start-up', () => {
  it('a port in use (a local Ollama) says so and how to pick another one', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as AddressInfo).port;
    try {
      const r = runConnect(writeProfile(profileFor(env, 'alice')), { listen: `127.0.0.1:${port}` }, io().io);
      await expect(r).rejects.toThrow(new RegExp(`^127\\.0\\.0\\.1:${port} is already in use \\(is a local Ollama running\\?\\)\\. Stop it, or pick another port with --listen 127\\.0\\.0\\.1:${port + 1} .*OLLAMA_HOST=127\\.0\\.0\\.1:${port + 1}`));
      await expect(r).rejects.toBeInstanceOf(WgoError);
    } finally {
      taken.close();
    }
  });

  it('a non-loopback address needs --allow-remote; with it, a warning says who then acts as the peer', async () => {
    await expect(runConnect(writeProfile(profileFor(env, 'alice')), { listen: '0.0.0.0:0' }, io().io)).rejects.toThrow(/reachable from other computers.*--allow-remote/);
    const { err, io: quiet } = io();
    const ac = new AbortController();
    const running = runConnect(writeProfile(profileFor(env, 'alice')), { listen: '0.0.0.0:0', allowRemote: true }, quiet, ac.signal);
    await new Promise((r) => setTimeout(r, 200));
    ac.abort();
    expect(await running).toBe(0);
    expect(err.join('')).toMatch(/anyone who can reach it uses the LLM as peer "alice"/);
    // The address it tells is the one it got, not port 0.
    expect(err.join('')).toMatch(/can now use http:\/\/0\.0\.0\.0:[1-9]\d*/);
  });

  it('bad input changes nothing: a bad --listen and a bad profile fail before anything listens', async () => {
    await expect(runConnect(writeProfile(profileFor(env, 'alice')), { listen: 'nowhere' }, io().io)).rejects.toThrow(/--listen nowhere: must be IP:PORT/);
    await expect(runConnect('/nonexistent.json', {}, io().io)).rejects.toThrow(/cannot read the connect profile/);
  });

  it('starts, serves, and warns at start about a certificate that is about to expire', async () => {
    const soon = issueCertificate(env.ca, { role: 'peer', commonName: 'alice', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 5 * DAY_MS) });
    const text = renderConnectProfile({ peer: 'alice', guardUrl: `https://127.0.0.1:${env.port}`, ca: env.ca.certPem, certificate: soon.certPem, key: soon.keyPem });
    const port = await freePort();
    const { err, io: quiet } = io();
    const ac = new AbortController();
    const running = runConnect(writeProfile(text), { listen: `127.0.0.1:${port}` }, quiet, ac.signal);
    try {
      let r: Response | null = null;
      for (let i = 0; i < 50 && !r; i++) r = await fetch(`http://127.0.0.1:${port}/api/version`).catch(() => new Promise<null>((res) => setTimeout(() => res(null), 20)));
      // The guard knows alice by her first certificate's serial: this one is not hers, and the guard says so.
      expect(r!.status).toBe(401);
      expect(err.join('')).toMatch(/warning: the client certificate expires in 4 days/);
      expect(err.join('')).toMatch(new RegExp(`use http://127\\.0\\.0\\.1:${port}`));
    } finally {
      ac.abort();
    }
    expect(await running).toBe(0);
  });
});
