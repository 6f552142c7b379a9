import { badInput } from '../errors.js';

/** An IPv4 network: the base address and prefix length, both as numbers. */
export interface Ipv4Net {
  base: number;
  prefix: number;
}

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4_RE = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

export function isIpv4(text: string): boolean {
  return IPV4_RE.test(text);
}

export function ipToInt(text: string): number {
  if (!isIpv4(text)) throw badInput(`"${text}" is not an IPv4 address`);
  return text.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parses `a.b.c.d/len`; the address must be the network address itself. */
export function parseCidr(text: string, what = 'subnet'): Ipv4Net {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  if (!m || !isIpv4(m[1]!)) throw badInput(`${what} "${text}" is not an IPv4 CIDR like 10.66.0.0/24`);
  const prefix = Number(m[2]);
  if (prefix > 32) throw badInput(`${what} "${text}" has a prefix longer than 32`);
  const base = ipToInt(m[1]!);
  if ((base & mask(prefix)) >>> 0 !== base) {
    throw badInput(`${what} "${text}" has host bits set; did you mean ${intToIp((base & mask(prefix)) >>> 0)}/${prefix}?`);
  }
  return { base, prefix };
}

export function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function contains(net: Ipv4Net, ip: number): boolean {
  return ((ip & mask(net.prefix)) >>> 0) === net.base;
}

/** The gateway's own tunnel address: the first host of the subnet. */
export function gatewayAddress(net: Ipv4Net): number {
  return net.base + 1;
}

/** Number of peer addresses: every host but the network, broadcast and gateway addresses. */
export function poolSize(net: Ipv4Net): number {
  return Math.max(0, 2 ** (32 - net.prefix) - 3);
}

/**
 * The lowest free peer address of the subnet, or null when the pool is full.
 * `used` holds every address still referred to (any peer row, revoked included).
 */
export function allocateAddress(net: Ipv4Net, used: ReadonlySet<number>): number | null {
  const first = net.base + 2;
  const last = net.base + 2 ** (32 - net.prefix) - 2;
  for (let ip = first; ip <= last; ip++) {
    if (!used.has(ip)) return ip;
  }
  return null;
}
