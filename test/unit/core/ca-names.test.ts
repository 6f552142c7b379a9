import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../../src/config.js';
import {
  canonicalNet, cnReadsAsHostname, identityDnsName, normalisePermitted, outsidePermitted, permittedForConfig, uncoveredSubtrees, widenForLeaves,
} from '../../../src/core/ca-names.js';
import { WgoError } from '../../../src/errors.js';
import { expectWgoError } from '../../support/errors.js';

const BASE = { stateDir: '/var/lib/wg-ollama', interface: 'wgo0', listenPort: 51820, subnet: '10.66.0.0/24', endpoint: 'vpn.example.com:51820', ollamaHost: '192.168.50.10', ollamaPort: 11434 };
const config = (extra: object = {}) => parseConfig({ ...BASE, ...extra }, 'test');

describe('permittedForConfig', () => {
  test('what init writes: the tunnel subnet, the GPU host, the admin UI on loopback, localhost and the reserved domain', () => {
    expect(permittedForConfig(config())).toEqual({
      ip: ['10.66.0.0/24', '192.168.50.10/32', '127.0.0.1/32'],
      dns: ['localhost', 'wg-ollama.invalid'],
      email: ['wg-ollama.invalid'],
    });
  });

  test('sync, admin addresses and hosts, guard DNS names and ca.permit; 0.0.0.0 and IPv6 listen addresses name no certificate', () => {
    const c = config({
      sync: { listen: '192.168.50.1:8443' },
      admin: { listen: ['192.168.50.1:9443', '0.0.0.0:9444', '[::1]:9445'], hosts: ['Admin.Lab.Example'] },
      guard: { listen: '192.168.50.10:11434', dnsNames: ['ollama.lab.example'] },
      ca: { permit: ['192.168.60.0/24', '192.168.61.7', 'fd00:1::/64', '.gpu.lab.example', 'gpu9.other.example'] },
    });
    expect(permittedForConfig(c)).toEqual({
      ip: ['10.66.0.0/24', '192.168.50.10/32', '192.168.50.1/32', '192.168.60.0/24', '192.168.61.7/32', 'fd00:1::/64'],
      dns: ['localhost', 'admin.lab.example', 'ollama.lab.example', '.gpu.lab.example', 'gpu9.other.example', 'wg-ollama.invalid'],
      email: ['wg-ollama.invalid'],
    });
  });

  test('an admin UI with its own certificate (admin.tls) or none adds no names', () => {
    expect(permittedForConfig(config({ admin: null })).dns).toEqual(['wg-ollama.invalid']);
    expect(permittedForConfig(config({ admin: { listen: ['127.0.0.1:8443'], hosts: ['a.example'], tls: { cert: '/x.crt', key: '/x.key' } } })).ip).toEqual(['10.66.0.0/24', '192.168.50.10/32']);
  });

  test('every name the config schema accepts is a valid subtree (opening the gateway never fails on them)', () => {
    expect(permittedForConfig(config({ admin: { listen: ['127.0.0.1:8443'], hosts: ['1234', 'a-1.B2'] } })).dns).toEqual(['localhost', '1234', 'a-1.b2', 'wg-ollama.invalid']);
  });

  test('config ca.permit entries are checked when the config is read', () => {
    for (const bad of ['10.0.0.1/24', '300.1.1.1', 'not a name', 'https://x.example', '', '*.example.com']) {
      const err = expectWgoError(() => config({ ca: { permit: [bad] } }), 'CONFIG_INVALID');
      expect(err.message).toContain('ca.permit.0');
    }
  });
});

describe('cnReadsAsHostname (OpenSSL cn2dnsid; checked against openssl itself in pki/name-constraints.test.ts)', () => {
  test.each([
    ['alice', false], ['a-b_c', false], ['bob.laptop', true], ['x_y.z', true], ['github.com', true], ['9.9.9.9', true],
    ['wg-ollama admin', false], ['guard:gpu1.lab', false], ['.a', false], ['a.', false], ['a..b', false], ['a-.b', false], ['a.-b', false], ['-a.b', false], ['_a._b', true],
  ])('%s → %s', (cn, expected) => expect(cnReadsAsHostname(cn)).toBe(expected));

  test('identity names live under wg-ollama.invalid', () => {
    expect(identityDnsName('Bob.Laptop')).toBe('bob.laptop.wg-ollama.invalid');
    expect(identityDnsName('x_y.z')).toBe('x-y.z.wg-ollama.invalid');
  });
});

describe('outsidePermitted (OpenSSL nc_dns / nc_ip matching)', () => {
  const p = normalisePermitted({ ip: ['10.66.0.0/24', '192.168.50.10/32', 'fd00::/8'], dns: ['lab.example', '.gpu.example'], email: ['wg-ollama.invalid'] });
  test.each([
    [['10.66.0.200'], [], []],
    [['10.66.1.1'], [], ['10.66.1.1']],
    [['192.168.50.10', '192.168.50.11'], [], ['192.168.50.11']],
    [['fd12::1', '2001:db8::1'], [], ['2001:db8::1']],
    [['::ffff:10.66.0.2'], [], ['::ffff:10.66.0.2']],
    [[], ['lab.example', 'x.lab.example', 'LAB.EXAMPLE'], []],
    [[], ['evillab.example', 'lab.example.com'], ['evillab.example', 'lab.example.com']],
    [[], ['gpu.example', 'a.gpu.example'], ['gpu.example']],
  ])('%j %j → %j', (ips, dns, outside) => expect(outsidePermitted(p, { ips, dns })).toEqual(outside));
});

describe('normalisePermitted and canonicalNet', () => {
  test('canonical forms', () => {
    expect(canonicalNet('10.1.2.3')).toBe('10.1.2.3/32');
    expect(canonicalNet('FD00:0:0::/8')).toBe('fd00::/8');
    expect(canonicalNet('::ffff:192.168.0.0/120')).toBe('::ffff:c0a8:0/120');
  });

  test.each([
    [{ ip: [], dns: ['a'], email: ['b'] }, /ip subtree/],
    [{ ip: ['10.0.0.0/8'], dns: [], email: ['b'] }, /dns subtree/],
    [{ ip: ['10.0.0.0/8'], dns: ['a'], email: [] }, /email subtree/],
    [{ ip: ['10.0.0.1/8'], dns: ['a'], email: ['b'] }, /host bits/],
    [{ ip: ['10.0.0.0/33'], dns: ['a'], email: ['b'] }, /not an IP address or network/],
    [{ ip: ['10.0.0.0/8'], dns: ['a b'], email: ['b'] }, /not a DNS name/],
    [{ ip: ['10.0.0.0/8'], dns: ['1.2.3.4'], email: ['b'] }, /not a DNS name/],
  ])('%j is refused', (p, message) => {
    const err = expectWgoError(() => normalisePermitted(p), 'BAD_INPUT');
    expect(err).toBeInstanceOf(WgoError);
    expect(err.message).toMatch(message);
  });
});

describe('uncoveredSubtrees and widenForLeaves', () => {
  const have = normalisePermitted({ ip: ['10.66.0.0/24', '192.168.0.0/16'], dns: ['lab.example', '.gpu.example'], email: ['wg-ollama.invalid'] });
  test('networks inside networks, DNS subtrees inside DNS subtrees', () => {
    const want = normalisePermitted({
      ip: ['10.66.0.0/24', '10.66.0.0/23', '192.168.5.0/24', '192.168.5.5/32', '172.16.0.1/32'],
      dns: ['lab.example', 'x.lab.example', '.lab.example', '.gpu.example', 'gpu.example', 'a.gpu.example', 'other.example'],
      email: ['wg-ollama.invalid', 'example.com'],
    });
    expect(uncoveredSubtrees(have, want)).toEqual(['10.66.0.0/23', '172.16.0.1/32', 'gpu.example', 'other.example', 'email:example.com']);
  });

  test('leaves outside are added one by one; host-name-like CNs without a DNS name are legacy', () => {
    const r = widenForLeaves(have, [
      { commonName: 'alice', ipAddresses: ['10.66.0.2'], dnsNames: [] },
      { commonName: 'bob.laptop', ipAddresses: ['10.66.0.3'], dnsNames: [] },
      { commonName: 'carol.phone', ipAddresses: ['10.66.0.4'], dnsNames: ['carol.phone.wg-ollama.invalid'] },
      { commonName: 'gpu7', ipAddresses: ['172.16.0.7'], dnsNames: ['gpu7.elsewhere.example'] },
    ]);
    expect(r.added).toEqual(['carol.phone.wg-ollama.invalid', '172.16.0.7', 'gpu7.elsewhere.example']);
    expect(r.legacy).toEqual(['bob.laptop']);
    expect(r.permitted.ip).toEqual([...have.ip, '172.16.0.7/32']);
    expect(r.permitted.dns).toEqual([...have.dns, 'bob.laptop', 'carol.phone.wg-ollama.invalid', 'gpu7.elsewhere.example']);
  });
});
