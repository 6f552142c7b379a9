/**
 * Which names the wg-ollama CA may sign for (RFC 5280 name constraints,
 * permitted subtrees only), decided from the config, and the same matching
 * rules OpenSSL applies, so a name outside them is refused before a
 * certificate is made. Pure: the DER encoding lives in pki/name-constraints.
 */
import { isIP } from 'node:net';
import { badInput } from '../errors.js';
import { parseListen } from './limits.js';

/** Permitted subtrees of the three name forms a certificate can claim for TLS or mail. */
export interface PermittedNames {
  /** Networks in CIDR form, IPv4 or IPv6: "10.66.0.0/24", "192.168.50.10/32". */
  ip: string[];
  /** DNS subtrees: "lab.example" is that name and every name below it; ".lab.example" only names below it. */
  dns: string[];
  /** rfc822Name subtrees: a mail host ("lab.example") or a domain below which hosts are permitted (".lab.example"). */
  email: string[];
}

/**
 * A reserved domain (RFC 6761: .invalid never resolves) under which a leaf
 * whose common name OpenSSL would read as a host name gets a DNS name of its
 * own: OpenSSL then checks that name, not the common name, against the
 * constraints. It is also the only mail domain the CA may sign for.
 */
export const IDENTITY_DOMAIN = 'wg-ollama.invalid';

/** RFC 1123 labels, plus "_": OpenSSL matches it, and peer names (old certificates' common names) may hold one. */
const LABEL_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** A DNS subtree: an optional leading "." then RFC 1123 labels, lowercased. */
function dnsSubtree(input: string, what: string): string {
  const name = input.toLowerCase();
  const body = name.startsWith('.') ? name.slice(1) : name;
  if (body.length < 1 || body.length > 253 || isIP(body) !== 0 || !body.split('.').every((l) => LABEL_RE.test(l))) {
    throw badInput(`${what} "${input}" is not a DNS name (or .domain for the names below it)`);
  }
  return name;
}

interface Net {
  bytes: number[];
  prefix: number;
}

/** Network-order bytes of an IPv4 or IPv6 address (no zone), or null. */
export function addressBytes(text: string): number[] | null {
  const family = isIP(text);
  if (family === 4) return text.split('.').map(Number);
  if (family !== 6 || text.includes('%')) return null;
  // The WHATWG URL parser normalises IPv6, including an embedded IPv4 tail, to hex groups.
  const host = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  const [head = '', tail] = host.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...h, ...Array<string>(tail === undefined ? 0 : 8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 255]);
}

function parseNet(input: string, what: string): Net {
  const [addr = '', len, extra] = input.split('/');
  const bytes = addressBytes(addr);
  const bits = bytes ? bytes.length * 8 : 0;
  const prefix = len === undefined ? bits : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!bytes || extra !== undefined || !(prefix >= 0 && prefix <= bits)) {
    throw badInput(`${what} "${input}" is not an IP address or network (CIDR like 192.168.50.0/24)`);
  }
  if (bytes.some((b, i) => (b & ~maskByte(prefix, i) & 255) !== 0)) {
    throw badInput(`${what} "${input}" has host bits set after the /${prefix}`);
  }
  return { bytes, prefix };
}

function maskByte(prefix: number, i: number): number {
  const bits = Math.min(8, Math.max(0, prefix - i * 8));
  return (0xff << (8 - bits)) & 0xff;
}

/** The CIDR text of a network: IPv6 in RFC 5952 form. */
function netText(n: Net): string {
  if (n.bytes.length === 4) return `${n.bytes.join('.')}/${n.prefix}`;
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((n.bytes[i]! << 8) | n.bytes[i + 1]!).toString(16));
  return `${new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1)}/${n.prefix}`;
}

/** An address or network in the canonical CIDR form ("10.0.0.1" → "10.0.0.1/32"). */
export function canonicalNet(input: string, what = 'network'): string {
  return netText(parseNet(input, what));
}

/** The network's address bytes followed by its mask bytes: the iPAddress form of a name constraint. */
export function netConstraintBytes(cidr: string): number[] {
  const n = parseNet(cidr, 'network');
  return [...n.bytes, ...n.bytes.map((_, i) => maskByte(n.prefix, i))];
}

/** Validates and canonicalises a permitted set; every form needs a subtree, or names of that form would be unconstrained. */
export function normalisePermitted(p: PermittedNames): PermittedNames {
  const out: PermittedNames = {
    ip: unique((p?.ip ?? []).map((x) => canonicalNet(x, 'permitted network'))),
    dns: unique((p?.dns ?? []).map((x) => dnsSubtree(x, 'permitted DNS name'))),
    email: unique((p?.email ?? []).map((x) => dnsSubtree(x, 'permitted mail domain'))),
  };
  for (const form of ['ip', 'dns', 'email'] as const) {
    if (out[form].length === 0) throw badInput(`name constraints need at least one permitted ${form} subtree (without one, every ${form} name would be allowed)`);
  }
  return out;
}

/**
 * Whether OpenSSL reads this common name as a DNS name (v3_ncons.c cn2dnsid):
 * letters, digits, "_", "-" and at least one "." between labels, "-" and "."
 * never first or last nor next to a ".". Such a CN is checked against the DNS
 * constraints when the certificate has no DNS subjectAltName.
 */
export function cnReadsAsHostname(cn: string): boolean {
  let dotted = false;
  for (let i = 0; i < cn.length; i++) {
    const c = cn[i]!;
    if (/[A-Za-z0-9_]/.test(c)) continue;
    if (i === 0 || i === cn.length - 1) return false;
    if (c === '-') continue;
    if (c === '.' && cn[i + 1] !== '.' && cn[i - 1] !== '-' && cn[i + 1] !== '-') {
      dotted = true;
      continue;
    }
    return false;
  }
  return dotted;
}

/** The DNS name a host-name-like common name is given under IDENTITY_DOMAIN. */
export function identityDnsName(cn: string): string {
  return `${cn.toLowerCase().replaceAll('_', '-')}.${IDENTITY_DOMAIN}`;
}

/** OpenSSL's nc_dns: a base with a leading "." matches names below it; without, also the name itself. */
function dnsMatches(name: string, base: string): boolean {
  const n = name.toLowerCase();
  const b = base.toLowerCase();
  if (n.length < b.length) return false;
  if (n.length > b.length && !b.startsWith('.') && n[n.length - b.length - 1] !== '.') return false;
  return n.endsWith(b);
}

function ipMatches(address: string, cidr: string): boolean {
  const a = addressBytes(address);
  const n = parseNet(cidr, 'network');
  return !!a && a.length === n.bytes.length && a.every((b, i) => (b & maskByte(n.prefix, i)) === n.bytes[i]);
}

/** The names a certificate asks for that the permitted set does not cover (empty when all fit). */
export function outsidePermitted(p: PermittedNames, names: { ips: readonly string[]; dns: readonly string[] }): string[] {
  return [
    ...names.ips.filter((ip) => !p.ip.some((n) => ipMatches(ip, n))),
    ...names.dns.filter((d) => !p.dns.some((b) => dnsMatches(d, b))),
  ];
}

/** One config `ca.permit` entry: an IP address or CIDR network, or a DNS name (".domain" for the names below it). */
export function permitEntry(text: string): { ip: string } | { dns: string } {
  if (typeof text !== 'string') throw badInput('a permitted name must be a string');
  if (isIP(text.split('/')[0]!) || /^[\d./]+$/.test(text)) return { ip: canonicalNet(text, 'permitted network') };
  return { dns: dnsSubtree(text, 'permitted DNS name') };
}

/** What a config needs to be permitted, in the shape of Config (only the fields read here). */
export interface CaNamesConfig {
  subnet: string;
  ollamaHost: string;
  sync?: { listen: string } | undefined;
  admin: { listen: readonly string[]; hosts: readonly string[]; tls?: unknown } | null;
  guard?: { dnsNames: readonly string[] } | undefined;
  ca?: { permit: readonly string[] } | undefined;
}

/**
 * The names a gateway's CA may sign for: the tunnel subnet (peers), the GPU
 * host (the guard peers dial), the sync API and admin UI addresses, localhost
 * and admin.hosts (the admin UI certificate), guard.dnsNames, ca.permit
 * (addresses, networks and DNS names of guards added later), and the reserved
 * IDENTITY_DOMAIN. Nothing else: no public name, no other address.
 */
export function permittedForConfig(c: CaNamesConfig): PermittedNames {
  const ip = [c.subnet, c.ollamaHost];
  const dns: string[] = [];
  if (c.sync) ip.push(parseListen(c.sync.listen)!.host);
  if (c.admin && !c.admin.tls) {
    for (const l of c.admin.listen) {
      const host = parseListen(l)!.host;
      if (isIP(host) === 4 && host !== '0.0.0.0') ip.push(host);
    }
    dns.push('localhost', ...c.admin.hosts);
  }
  dns.push(...(c.guard?.dnsNames ?? []));
  for (const entry of c.ca?.permit ?? []) {
    const e = permitEntry(entry);
    if ('ip' in e) ip.push(e.ip);
    else dns.push(e.dns);
  }
  dns.push(IDENTITY_DOMAIN);
  return normalisePermitted({ ip, dns, email: [IDENTITY_DOMAIN] });
}

/** A certificate already issued, as the CA re-issue sees it. */
export interface LeafNames {
  commonName: string;
  ipAddresses: readonly string[];
  dnsNames: readonly string[];
}

/**
 * `base` widened so every given leaf still verifies: addresses and DNS names
 * it does not cover are added one by one, and `legacy` lists the host-name-like
 * common names of leaves without a DNS name (made before IDENTITY_DOMAIN names
 * existed), which have to be permitted as DNS names themselves.
 */
export function widenForLeaves(base: PermittedNames, leaves: readonly LeafNames[]): { permitted: PermittedNames; added: string[]; legacy: string[] } {
  const p: PermittedNames = { ip: [...base.ip], dns: [...base.dns], email: [...base.email] };
  const added: string[] = [];
  const legacy: string[] = [];
  for (const leaf of leaves) {
    const dns = [...leaf.dnsNames];
    const fromCn = dns.length === 0 && cnReadsAsHostname(leaf.commonName);
    if (fromCn) dns.push(leaf.commonName.toLowerCase());
    for (const name of outsidePermitted(p, { ips: leaf.ipAddresses, dns })) {
      if (isIP(name)) p.ip.push(canonicalNet(name));
      else p.dns.push(name.toLowerCase());
      (fromCn && !isIP(name) ? legacy : added).push(name);
    }
  }
  return { permitted: normalisePermitted(p), added, legacy };
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

/**
 * The subtrees of `want` that `have` does not cover entirely: what a CA made
 * with `have` cannot sign for although the config now needs it.
 */
export function uncoveredSubtrees(have: PermittedNames, want: PermittedNames): string[] {
  const ipCovered = (cidr: string): boolean => {
    const w = parseNet(cidr, 'network');
    return have.ip.some((h) => {
      const n = parseNet(h, 'network');
      return n.prefix <= w.prefix && n.bytes.length === w.bytes.length && w.bytes.every((b, i) => (b & maskByte(n.prefix, i)) === n.bytes[i]);
    });
  };
  // A DNS subtree is a suffix property: one name below it stands for all of them.
  const dnsCovered = (base: string): boolean => have.dns.some((h) => dnsMatches(base.startsWith('.') ? `x${base}` : base, h));
  const mailCovered = (base: string): boolean => have.email.some((h) => h.toLowerCase() === base.toLowerCase());
  return [...want.ip.filter((x) => !ipCovered(x)), ...want.dns.filter((x) => !dnsCovered(x)), ...want.email.filter((x) => !mailCovered(x)).map((x) => `email:${x}`)];
}
