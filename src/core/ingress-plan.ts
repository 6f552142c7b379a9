/**
 * The tunnel's second barrier, independent of netfilter: a tc `clsact` qdisc
 * on the WireGuard interface with one ingress filter, a classic BPF program
 * run in direct-action mode (`cls_bpf ... da`). Every packet a peer sends
 * passes it before netfilter sees the packet, so `iptables -F`, an
 * `iptables-restore` of a whole table (a firewall reload) and
 * `nft flush ruleset` leave it in place.
 *
 * It lets through what the service needs and drops everything else:
 *   - IPv4 TCP to ollamaHost:ollamaPort (SYNs, ACKs and data of every flow);
 *   - IPv4 ICMP destination-unreachable to ollamaHost (path MTU and errors
 *     about the service's flows; iptables still requires them RELATED);
 *   - nothing else: no other address or port, no later fragments (they
 *     carry no port to check), no IPv6, nothing that is not IP.
 * Packets to peers are egress and not filtered here; WireGuard's own UDP
 * arrives on the outer interface, never on this one.
 *
 * cls_bpf with `da` needs no action module (act_gact) and no flower
 * classifier: sch_ingress and cls_bpf are enough.
 */
import { ipToInt } from './ipv4.js';
import { WgoError } from '../errors.js';

export interface IngressSpec {
  iface: string;
  ollamaHost: string;
  ollamaPort: number;
}

/** One classic BPF instruction, as `tc -j filter show` prints it. */
export interface BpfInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** The tc priority and handle of our filter: pref 1 runs before any other. */
export const INGRESS_PREF = 1;
export const INGRESS_HANDLE = '0x1';

/** Return values in direct-action mode (linux/pkt_cls.h). */
const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
/** Ancillary load of skb->protocol (linux/filter.h: SKF_AD_OFF + SKF_AD_PROTOCOL). */
const SKF_AD_PROTOCOL = 0xfffff000;

const OP = {
  ldh: 0x28, // BPF_LD | BPF_H | BPF_ABS
  ld: 0x20, // BPF_LD | BPF_W | BPF_ABS
  ldb: 0x30, // BPF_LD | BPF_B | BPF_ABS
  ldhInd: 0x48, // BPF_LD | BPF_H | BPF_IND
  ldbInd: 0x50, // BPF_LD | BPF_B | BPF_IND
  ldxMsh: 0xb1, // BPF_LDX | BPF_B | BPF_MSH: X = 4 * (P[k] & 0xf)
  ldLen: 0x80, // BPF_LD | BPF_W | BPF_LEN: A = packet length
  tax: 0x07, // BPF_MISC | BPF_TAX
  txa: 0x87, // BPF_MISC | BPF_TXA
  add: 0x04, // BPF_ALU | BPF_ADD | BPF_K
  jge: 0x35, // BPF_JMP | BPF_JGE | BPF_K
  jgeX: 0x3d, // BPF_JMP | BPF_JGE | BPF_X
  jeq: 0x15, // BPF_JMP | BPF_JEQ | BPF_K
  jset: 0x45, // BPF_JMP | BPF_JSET | BPF_K
  ret: 0x06, // BPF_RET | BPF_K
} as const;

type Label = 'pass' | 'drop' | 'icmp' | 'next';
type Step = { code: number; k: number; jt?: Label; jf?: Label; label?: Label };

/**
 * The program. A WireGuard interface has no link-layer header: offset 0 is
 * the IP header (the protocol is checked before anything is read from it).
 * A load past the end of a packet would end a classic BPF program with 0,
 * which is TC_ACT_OK here: lengths are checked before every load.
 */
export function ingressProgram(spec: Pick<IngressSpec, 'ollamaHost' | 'ollamaPort'>): BpfInsn[] {
  const steps: Step[] = [
    { code: OP.ldh, k: SKF_AD_PROTOCOL },
    { code: OP.jeq, k: 0x0800, jt: 'next', jf: 'drop' }, // IPv4 only
    { code: OP.ldLen, k: 0 },
    { code: OP.jge, k: 20, jt: 'next', jf: 'drop' }, // a whole IPv4 header
    { code: OP.ld, k: 16 },
    { code: OP.jeq, k: ipToInt(spec.ollamaHost), jt: 'next', jf: 'drop' }, // to the service address only
    { code: OP.ldh, k: 6 },
    { code: OP.jset, k: 0x1fff, jt: 'drop', jf: 'next' }, // a later fragment: no port to check
    { code: OP.ldxMsh, k: 0 }, // X = IP header length
    { code: OP.txa, k: 0 },
    { code: OP.add, k: 4 },
    { code: OP.tax, k: 0 },
    { code: OP.ldLen, k: 0 },
    { code: OP.jgeX, k: 0, jt: 'next', jf: 'drop' }, // the first 4 bytes after it (ports, ICMP type)
    { code: OP.ldxMsh, k: 0 },
    { code: OP.ldb, k: 9 },
    { code: OP.jeq, k: 6, jt: 'next', jf: 'icmp' },
    { code: OP.ldhInd, k: 2 }, // TCP destination port
    { code: OP.jeq, k: spec.ollamaPort, jt: 'pass', jf: 'drop' },
    { code: OP.jeq, k: 1, jt: 'next', jf: 'drop', label: 'icmp' },
    { code: OP.ldbInd, k: 0 }, // ICMP type
    { code: OP.jeq, k: 3, jt: 'pass', jf: 'drop' }, // destination unreachable
    { code: OP.ret, k: TC_ACT_OK, label: 'pass' },
    { code: OP.ret, k: TC_ACT_SHOT, label: 'drop' },
  ];
  const at = (l: Label, from: number): number => {
    if (l === 'next') return 0;
    const i = steps.findIndex((s) => s.label === l);
    return i - from - 1;
  };
  return steps.map((s, i) => ({ code: s.code, jt: s.jt ? at(s.jt, i) : 0, jf: s.jf ? at(s.jf, i) : 0, k: s.k }));
}

/** The program in tc's `bytecode` syntax (what `tcpdump -ddd` prints, comma-separated). */
export function renderBytecode(insns: readonly BpfInsn[]): string {
  return [String(insns.length), ...insns.map((x) => `${x.code} ${x.jt} ${x.jf} ${x.k}`)].join(',');
}

/** One filter as `tc -j filter show dev X ingress` lists it (the header entries carry no options). */
export interface TcFilter {
  chain: number;
  pref: number;
  kind: string;
  protocol: string;
  handle: string | null;
  directAction: boolean;
  insns: BpfInsn[] | null;
}

/** What the kernel holds on the interface: is there a clsact qdisc, and which ingress filters. */
export interface IngressState {
  clsact: boolean;
  filters: TcFilter[];
}

function parseJsonArray(text: string, what: string): Record<string, unknown>[] {
  let v: unknown;
  try {
    v = JSON.parse(text.trim() === '' ? '[]' : text);
  } catch {
    throw new WgoError('INTERNAL', `cannot parse ${what}: not JSON`);
  }
  if (!Array.isArray(v) || v.some((e) => typeof e !== 'object' || e === null)) throw new WgoError('INTERNAL', `cannot parse ${what}: not a JSON array of objects`);
  return v as Record<string, unknown>[];
}

const isInsn = (x: unknown): x is BpfInsn =>
  typeof x === 'object' && x !== null && ['code', 'jt', 'jf', 'k'].every((f) => typeof (x as Record<string, unknown>)[f] === 'number');

/** Parses `tc -j qdisc show dev X` and `tc -j filter show dev X ingress`. */
export function parseIngress(qdiscJson: string, filterJson: string): IngressState {
  const clsact = parseJsonArray(qdiscJson, 'tc qdisc output').some((q) => q.kind === 'clsact');
  const filters: TcFilter[] = [];
  for (const f of parseJsonArray(filterJson, 'tc filter output')) {
    const o = f.options as Record<string, unknown> | undefined;
    const bytecode = o?.bytecode as { insns?: unknown } | undefined;
    filters.push({
      chain: Number(f.chain ?? 0),
      pref: Number(f.pref),
      kind: String(f.kind),
      protocol: String(f.protocol),
      handle: typeof o?.handle === 'string' ? o.handle : null,
      directAction: o?.['direct-action'] === true,
      insns: Array.isArray(bytecode?.insns) && bytecode.insns.every(isInsn) ? bytecode.insns.map((x) => ({ code: x.code, jt: x.jt, jf: x.jf, k: x.k })) : null,
    });
  }
  return { clsact, filters };
}

const isOurs = (f: TcFilter): boolean => f.chain === 0 && f.pref === INGRESS_PREF && f.handle === INGRESS_HANDLE;
const sameProgram = (a: readonly BpfInsn[] | null, b: readonly BpfInsn[]): boolean =>
  !!a && a.length === b.length && a.every((x, i) => x.code === b[i]!.code && x.jt === b[i]!.jt && x.jf === b[i]!.jf && x.k === b[i]!.k);

/** Is the barrier exactly in place: clsact, our program at pref 1, and no other ingress filter anywhere? */
export function ingressInSync(state: IngressState, spec: IngressSpec): boolean {
  if (!state.clsact) return false;
  const want = ingressProgram(spec);
  const withOptions = state.filters.filter((f) => f.handle !== null);
  const ours = withOptions.filter(isOurs);
  if (ours.length !== 1 || withOptions.length !== 1) return false;
  if (state.filters.some((f) => f.chain !== 0 || f.pref !== INGRESS_PREF)) return false;
  const f = ours[0]!;
  return f.kind === 'bpf' && f.protocol === 'all' && f.directAction && sameProgram(f.insns, want);
}

/** The `tc` argv that installs our filter (creating it or swapping its program in place). */
export function ingressFilterArgs(spec: IngressSpec): string[] {
  return ['filter', 'replace', 'dev', spec.iface, 'ingress', 'pref', String(INGRESS_PREF), 'handle', INGRESS_HANDLE,
    'protocol', 'all', 'bpf', 'bytecode', renderBytecode(ingressProgram(spec)), 'da'];
}

/**
 * The `tc` commands (argv arrays, in order) that bring the interface to
 * exactly our barrier: the qdisc if missing, our filter, then every other
 * ingress filter removed (ours first, so removing the others never leaves a
 * moment without it). Empty when everything is in place.
 */
export function planIngress(state: IngressState, spec: IngressSpec): string[][] {
  if (ingressInSync(state, spec)) return [];
  const iface = spec.iface;
  const out: string[][] = [];
  if (!state.clsact) out.push(['qdisc', 'add', 'dev', iface, 'clsact']);
  // Someone else's classifier at our priority would make `replace` fail: it goes first
  // (it ran before ours anyway, so removing it opens nothing).
  const squatter = state.filters.some((f) => f.chain === 0 && f.pref === INGRESS_PREF && (f.kind !== 'bpf' || f.protocol !== 'all'));
  if (squatter) out.push(['filter', 'del', 'dev', iface, 'ingress', 'pref', String(INGRESS_PREF)]);
  out.push(ingressFilterArgs(spec));
  if (!squatter) {
    const handles = new Set(state.filters.filter((f) => f.chain === 0 && f.pref === INGRESS_PREF && f.handle !== null && !isOurs(f)).map((f) => f.handle!));
    for (const h of handles) out.push(['filter', 'del', 'dev', iface, 'ingress', 'pref', String(INGRESS_PREF), 'handle', h, 'protocol', 'all', 'bpf']);
  }
  const others = new Map<string, [number, number]>();
  for (const f of state.filters) if (f.chain !== 0 || f.pref !== INGRESS_PREF) others.set(`${f.chain}/${f.pref}`, [f.chain, f.pref]);
  for (const [chain, pref] of others.values()) {
    out.push(['filter', 'del', 'dev', iface, 'ingress', ...(chain !== 0 ? ['chain', String(chain)] : []), 'pref', String(pref)]);
  }
  return out;
}
