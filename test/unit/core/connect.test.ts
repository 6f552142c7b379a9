import { describe, expect, it } from 'vitest';
import { certificateNotice, describeGuardFailure, hostAllowed, isLoopbackAddress, parseConnectListen } from '../../../src/core/connect.js';

const GUARD = 'https://10.66.0.1:11434';
const DAY = 86_400_000;

describe('parseConnectListen', () => {
  it.each([
    ['127.0.0.1:11434', { host: '127.0.0.1', port: 11434, loopback: true, text: '127.0.0.1:11434' }],
    ['localhost:11500', { host: '127.0.0.1', port: 11500, loopback: true, text: '127.0.0.1:11500' }],
    ['[::1]:11434', { host: '::1', port: 11434, loopback: true, text: '[::1]:11434' }],
    ['127.0.0.2:8080', { host: '127.0.0.2', port: 8080, loopback: true, text: '127.0.0.2:8080' }],
    ['0.0.0.0:11434', { host: '0.0.0.0', port: 11434, loopback: false, text: '0.0.0.0:11434' }],
    ['192.168.1.5:11434', { host: '192.168.1.5', port: 11434, loopback: false, text: '192.168.1.5:11434' }],
  ])('%s', (text, want) => {
    expect(parseConnectListen(text)).toEqual(want);
  });

  it.each(['11434', 'example.com:11434', '127.0.0.1', '127.0.0.1:99999', '300.1.1.1:80', ':11434', 'localhost'])('refuses %s', (text) => {
    expect(parseConnectListen(text)).toBeNull();
  });

  it('loopback is 127/8 and ::1 only', () => {
    expect(isLoopbackAddress('127.255.0.1')).toBe(true);
    expect(isLoopbackAddress('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopbackAddress('10.0.0.1')).toBe(false);
    expect(isLoopbackAddress('::')).toBe(false);
  });
});

describe('hostAllowed (DNS rebinding)', () => {
  const local = parseConnectListen('127.0.0.1:11434')!;
  it.each([
    ['127.0.0.1:11434', true],
    ['localhost:11434', true],
    ['LOCALHOST', true],
    ['127.0.0.1', true],
    ['[::1]:11434', true],
    ['127.0.0.1:11435', false],
    ['evil.example:11434', false],
    ['attacker.localhost.example', false],
    ['10.66.0.1:11434', false],
    ['', false],
    ['127.0.0.1:11434:1', false],
  ])('Host %j → %s', (host, ok) => {
    expect(hostAllowed(host, local, false)).toBe(ok);
  });

  it('no Host header is refused; --allow-remote answers any', () => {
    expect(hostAllowed(undefined, local, false)).toBe(false);
    expect(hostAllowed('evil.example', local, true)).toBe(true);
  });

  it('a non-loopback listen address names itself', () => {
    const lan = parseConnectListen('192.168.1.5:11434')!;
    expect(hostAllowed('192.168.1.5:11434', lan, false)).toBe(true);
    expect(hostAllowed('192.168.1.6:11434', lan, false)).toBe(false);
  });
});

describe('describeGuardFailure', () => {
  it.each([
    ['UND_ERR_CONNECT_TIMEOUT', /cannot reach the wg-ollama guard at https:\/\/10\.66\.0\.1:11434 .*WireGuard tunnel up\? .*no recent handshake means it is down, or your peer was disabled or revoked/],
    ['EHOSTUNREACH', /cannot reach .*WireGuard tunnel up/],
    ['ENETUNREACH', /cannot reach .*WireGuard tunnel up/],
    ['ECONNREFUSED', /refused the connection .*guard is not running/],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', /not the wg-ollama guard this profile trusts/],
    ['ERR_TLS_CERT_ALTNAME_INVALID', /not the wg-ollama guard this profile trusts/],
    ['ECONNRESET', /closed the connection .*WireGuard tunnel/],
    ['UND_ERR_HEADERS_TIMEOUT', /did not answer in time/],
    ['SOMETHING_NEW', /cannot use the wg-ollama guard .*SOMETHING_NEW/],
  ])('%s', (code, re) => {
    const text = describeGuardFailure({ code, message: 'x' }, GUARD);
    expect(text).toMatch(re);
    expect(text).toContain(GUARD);
  });

  it('an error without a code keeps its message', () => {
    expect(describeGuardFailure({ message: 'boom' }, GUARD)).toMatch(/\(boom\)/);
    expect(describeGuardFailure(undefined, GUARD)).toMatch(/unknown error/);
  });
});

describe('certificateNotice', () => {
  const now = Date.parse('2026-12-04T12:00:00Z');
  it('says nothing with more than 14 days left', () => {
    expect(certificateNotice(now + 15 * DAY, now)).toBeNull();
  });
  it('warns within 14 days, with the days left', () => {
    expect(certificateNotice(now + 14 * DAY, now)).toEqual({ expired: false, text: expect.stringMatching(/expires in 14 days \(2026-12-18T12:00:00\.000Z\)/) });
    expect(certificateNotice(now + 1.5 * DAY, now)?.text).toMatch(/expires in 1 day \(/);
    expect(certificateNotice(now + 3_600_000, now)?.text).toMatch(/less than a day/);
  });
  it('an expired certificate is expired', () => {
    expect(certificateNotice(now - 1, now)).toEqual({ expired: true, text: expect.stringMatching(/expired on 2026-12-04T11:59:59\.999Z.*refuse/) });
  });
});
