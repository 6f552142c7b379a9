import { describe, expect, test } from 'vitest';
import {
  allocateAddress,
  contains,
  gatewayAddress,
  intToIp,
  ipToInt,
  isIpv4,
  parseCidr,
  poolSize,
} from '../../../src/core/ipv4.js';
import { expectWgoError } from '../../support/errors.js';

const ip = ipToInt;

describe('isIpv4 / ipToInt / intToIp', () => {
  test.each(['0.0.0.0', '10.66.0.1', '255.255.255.255', '192.168.1.10'])('%s round-trips', (text) => {
    expect(isIpv4(text)).toBe(true);
    expect(intToIp(ipToInt(text))).toBe(text);
  });

  test('ipToInt gives the unsigned value', () => {
    expect(ipToInt('10.66.0.2')).toBe(0x0a420002);
    expect(ipToInt('255.255.255.255')).toBe(0xffffffff);
  });

  test.each(['256.1.1.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.-4', ' 1.2.3.4', 'a.b.c.d', ''])(
    'rejects %j',
    (text) => {
      expect(isIpv4(text)).toBe(false);
      expectWgoError(() => ipToInt(text), 'BAD_INPUT');
    },
  );
});

describe('parseCidr', () => {
  test.each([
    ['10.66.0.0/24', ip('10.66.0.0'), 24],
    ['10.66.0.0/16', ip('10.66.0.0'), 16],
    ['10.66.0.8/29', ip('10.66.0.8'), 29],
    ['0.0.0.0/0', 0, 0],
    ['10.1.2.3/32', ip('10.1.2.3'), 32],
  ])('parses %s', (text, base, prefix) => {
    expect(parseCidr(text)).toEqual({ base, prefix });
  });

  test.each([
    ['host bits set', '10.66.0.1/24', 'subnet "10.66.0.1/24" has host bits set; did you mean 10.66.0.0/24?'],
    ['host bits set in /29', '10.66.0.9/29', 'subnet "10.66.0.9/29" has host bits set; did you mean 10.66.0.8/29?'],
    ['prefix over 32', '10.66.0.0/33', 'subnet "10.66.0.0/33" has a prefix longer than 32'],
    ['three-digit prefix', '10.66.0.0/100', 'subnet "10.66.0.0/100" is not an IPv4 CIDR like 10.66.0.0/24'],
    ['missing prefix', '10.66.0.0', 'subnet "10.66.0.0" is not an IPv4 CIDR like 10.66.0.0/24'],
    ['negative prefix', '10.66.0.0/-1', 'subnet "10.66.0.0/-1" is not an IPv4 CIDR like 10.66.0.0/24'],
    ['bad octet', '10.300.0.0/16', 'subnet "10.300.0.0/16" is not an IPv4 CIDR like 10.66.0.0/24'],
    ['three octets', '10.66.0/24', 'subnet "10.66.0/24" is not an IPv4 CIDR like 10.66.0.0/24'],
    ['IPv6', 'fd00::/64', 'subnet "fd00::/64" is not an IPv4 CIDR like 10.66.0.0/24'],
  ])('rejects %s', (_what, text, message) => {
    expect(expectWgoError(() => parseCidr(text), 'BAD_INPUT').message).toBe(message);
  });

  test('names the field in the message', () => {
    expect(expectWgoError(() => parseCidr('x', 'allowed ips'), 'BAD_INPUT').message).toMatch(/^allowed ips "x"/);
  });
});

describe('contains / gatewayAddress / poolSize', () => {
  const net = parseCidr('10.66.0.0/24');

  test.each([
    ['10.66.0.0', true],
    ['10.66.0.1', true],
    ['10.66.0.255', true],
    ['10.66.1.0', false],
    ['10.65.255.255', false],
    ['192.168.1.10', false],
  ])('/24 contains %s: %s', (addr, want) => {
    expect(contains(net, ip(addr))).toBe(want);
  });

  test('works for addresses with the top bit set', () => {
    const high = parseCidr('192.168.0.0/16');
    expect(contains(high, ip('192.168.255.254'))).toBe(true);
    expect(contains(high, ip('192.169.0.0'))).toBe(false);
  });

  test('the gateway takes the first host', () => {
    expect(intToIp(gatewayAddress(net))).toBe('10.66.0.1');
  });

  test.each([
    ['10.66.0.0/24', 253],
    ['10.66.0.0/16', 65533],
    ['10.66.0.8/29', 5],
    ['10.66.0.0/30', 1],
    ['10.66.0.0/31', 0],
    ['10.66.0.1/32', 0],
  ])('poolSize(%s) = %i', (cidr, size) => {
    expect(poolSize(parseCidr(cidr))).toBe(size);
  });
});

describe('allocateAddress', () => {
  const net24 = parseCidr('10.66.0.0/24');
  const set = (...addrs: string[]): Set<number> => new Set(addrs.map(ip));
  const alloc = (used: Set<number>, net = net24): string | null => {
    const n = allocateAddress(net, used);
    return n === null ? null : intToIp(n);
  };

  test('starts at .2, skipping the network and gateway addresses', () => {
    expect(alloc(set())).toBe('10.66.0.2');
  });

  test('takes the lowest free address, filling holes', () => {
    expect(alloc(set('10.66.0.2', '10.66.0.3'))).toBe('10.66.0.4');
    expect(alloc(set('10.66.0.2', '10.66.0.4'))).toBe('10.66.0.3');
  });

  test('never hands out the broadcast address', () => {
    const used = new Set<number>();
    for (let i = 2; i <= 253; i++) used.add(ip(`10.66.0.${i}`));
    expect(alloc(used)).toBe('10.66.0.254');
    used.add(ip('10.66.0.254'));
    expect(alloc(used)).toBeNull();
  });

  test('a /29 has exactly 5 peer addresses, then null', () => {
    const net = parseCidr('10.66.0.8/29');
    const used = new Set<number>();
    const got: string[] = [];
    for (;;) {
      const n = allocateAddress(net, used);
      if (n === null) break;
      got.push(intToIp(n));
      used.add(n);
    }
    expect(got).toEqual(['10.66.0.10', '10.66.0.11', '10.66.0.12', '10.66.0.13', '10.66.0.14']);
    expect(got).toHaveLength(poolSize(net));
  });

  test('addresses outside the subnet in `used` do not matter', () => {
    expect(alloc(set('10.67.0.2', '10.66.1.2'))).toBe('10.66.0.2');
  });
});
