/**
 * The X.509 nameConstraints extension (RFC 5280 4.2.1.10), permitted subtrees
 * only, encoded and read with node-forge's ASN.1 DER helpers: forge 1.x cannot
 * write this extension itself. What the constraints mean is enforced by the
 * verifier (OpenSSL, browsers); nothing here verifies a chain.
 */
import forge from 'node-forge';
import { netConstraintBytes, normalisePermitted, type PermittedNames } from '../core/ca-names.js';

export const NAME_CONSTRAINTS_OID = '2.5.29.30';

/** GeneralName tags: [1] rfc822Name, [2] dNSName, [7] iPAddress. */
const RFC822 = 1;
const DNS = 2;
const IP = 7;

const { asn1 } = forge;
const ctx = asn1.Class.CONTEXT_SPECIFIC;

/**
 * NameConstraints ::= SEQUENCE { permittedSubtrees [0] GeneralSubtrees }, each
 * GeneralSubtree ::= SEQUENCE { base GeneralName } (minimum 0, no maximum, as
 * RFC 5280 requires). A critical forge extension with the DER value.
 */
export function nameConstraintsExtension(permitted: PermittedNames): { id: string; name: string; critical: true; value: string } {
  const p = normalisePermitted(permitted);
  const subtree = (tag: number, bytes: string): forge.asn1.Asn1 =>
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [asn1.create(ctx, tag as forge.asn1.Type, false, bytes)]);
  const subtrees = [
    ...p.ip.map((cidr) => subtree(IP, String.fromCharCode(...netConstraintBytes(cidr)))),
    ...p.dns.map((name) => subtree(DNS, name)),
    ...p.email.map((name) => subtree(RFC822, name)),
  ];
  const value = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [asn1.create(ctx, 0 as forge.asn1.Type, true, subtrees)]);
  return { id: NAME_CONSTRAINTS_OID, name: 'nameConstraints', critical: true, value: asn1.toDer(value).getBytes() };
}

/**
 * The permitted subtrees of a certificate's nameConstraints extension, or null
 * when it has none. `other` counts what this module never writes (excluded
 * subtrees, other name forms): such a CA is constrained, but issuing only
 * checks the forms listed.
 */
export function readNameConstraints(cert: forge.pki.Certificate): (PermittedNames & { other: number }) | null {
  const ext = cert.extensions.find((e: { id?: string }) => e.id === NAME_CONSTRAINTS_OID) as { value?: string } | undefined;
  if (!ext || typeof ext.value !== 'string') return null;
  const out = { ip: [] as string[], dns: [] as string[], email: [] as string[], other: 0 };
  const top = asn1.fromDer(ext.value);
  for (const trees of top.value as forge.asn1.Asn1[]) {
    if (trees.tagClass !== ctx || (trees.type as number) !== 0) {
      out.other++;
      continue;
    }
    for (const subtree of trees.value as forge.asn1.Asn1[]) {
      const [base, ...range] = subtree.value as forge.asn1.Asn1[];
      const tag = base?.type as number | undefined;
      const bytes = typeof base?.value === 'string' ? base.value : null;
      if (!base || base.tagClass !== ctx || bytes === null || range.length > 0) out.other++;
      else if (tag === DNS) out.dns.push(bytes);
      else if (tag === RFC822) out.email.push(bytes);
      else if (tag === IP && (bytes.length === 8 || bytes.length === 32)) out.ip.push(cidrOf(bytes));
      else out.other++;
    }
  }
  return out;
}

function cidrOf(bytes: string): string {
  const half = bytes.length / 2;
  const addr = [...bytes.slice(0, half)].map((c) => c.charCodeAt(0));
  const mask = [...bytes.slice(half)].map((c) => c.charCodeAt(0));
  const prefix = mask.reduce((n, b) => n + b.toString(2).replace(/0/g, '').length, 0);
  if (half === 4) return `${addr.join('.')}/${prefix}`;
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((addr[i]! << 8) | addr[i + 1]!).toString(16));
  return `${new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1)}/${prefix}`;
}
