import type { BpfInsn } from '../../src/core/ingress-plan.js';
import type { IngressDriver } from '../../src/system/ingress.js';

interface FakeFilter {
  chain: number;
  pref: number;
  kind: string;
  protocol: string;
  handle: string;
  da: boolean;
  insns: BpfInsn[];
}

/**
 * tc on in-memory interfaces behind IngressDriver: a clsact flag and the
 * ingress filters per device, printed as `tc -j` prints them. Understands the
 * commands the barrier uses (`qdisc add|del ... clsact`, `filter replace ...
 * bpf bytecode ... da`, `filter del ... pref N [handle H ...]`) and fails as tc
 * does on a missing device, a second clsact or a kind clash at one pref.
 */
export class FakeIngress implements IngressDriver {
  readonly devices = new Map<string, { clsact: boolean; filters: FakeFilter[] }>();
  /** Operations named here throw (a kernel without cls_bpf, tc missing). */
  readonly failOn = new Set<'show' | 'tc'>();

  /** `exists` says whether the device is there (the fake WireGuard's interfaces). */
  constructor(private readonly exists: (iface: string) => boolean, private readonly log: string[] = []) {}

  private dev(iface: string) {
    if (!this.exists(iface)) throw new Error(`fake tc: Cannot find device "${iface}"`);
    let d = this.devices.get(iface);
    if (!d) this.devices.set(iface, (d = { clsact: false, filters: [] }));
    return d;
  }

  async show(iface: string): Promise<{ qdisc: string; filters: string }> {
    if (this.failOn.has('show')) throw new Error('fake tc show failure');
    const d = this.dev(iface);
    const out: unknown[] = [];
    for (const f of d.filters) {
      out.push({ protocol: f.protocol, pref: f.pref, kind: f.kind, chain: f.chain });
      out.push({ protocol: f.protocol, pref: f.pref, kind: f.kind, chain: f.chain, options: { handle: f.handle, ...(f.da ? { 'direct-action': true } : {}), not_in_hw: true, bytecode: { length: f.insns.length, insns: f.insns } } });
    }
    return { qdisc: JSON.stringify(d.clsact ? [{ kind: 'clsact', handle: 'ffff:', parent: 'ffff:fff1', options: {} }] : []), filters: JSON.stringify(out) };
  }

  async tc(args: readonly string[]): Promise<void> {
    this.log.push(`tc ${args.slice(0, 2).join(' ')}`);
    if (this.failOn.has('tc')) throw new Error('fake tc: Error: TC classifier not found.');
    const a = [...args];
    const d = this.dev(a[3]!);
    const opt = (name: string): string | undefined => {
      const i = a.indexOf(name);
      return i >= 0 ? a[i + 1] : undefined;
    };
    if (a[0] === 'qdisc') {
      if (a[1] === 'add') {
        if (d.clsact) throw new Error('fake tc: Error: Exclusivity flag on, cannot modify.');
        d.clsact = true;
      } else if (a[1] === 'del') {
        d.clsact = false;
        d.filters = [];
      }
      return;
    }
    if (!d.clsact) throw new Error('fake tc: Error: Cannot find specified qdisc on specified device.');
    const chain = Number(opt('chain') ?? 0);
    const pref = Number(opt('pref'));
    if (a[1] === 'replace') {
      const code = opt('bytecode')!.split(',').slice(1).map((s) => s.split(' ').map(Number));
      const f: FakeFilter = { chain, pref, kind: 'bpf', protocol: opt('protocol')!, handle: opt('handle')!, da: a.includes('da'), insns: code.map(([c, jt, jf, k]) => ({ code: c!, jt: jt!, jf: jf!, k: k! })) };
      if (d.filters.some((x) => x.chain === chain && x.pref === pref && (x.kind !== f.kind || x.protocol !== f.protocol))) throw new Error('fake tc: Error: Specified filter kind does not match existing one.');
      const at = d.filters.findIndex((x) => x.chain === chain && x.pref === pref && x.handle === f.handle);
      if (at >= 0) d.filters[at] = f;
      else d.filters.unshift(f);
      d.filters.sort((x, y) => x.chain - y.chain || x.pref - y.pref);
    } else if (a[1] === 'del') {
      const handle = opt('handle');
      d.filters = d.filters.filter((x) => !(x.chain === chain && x.pref === pref && (handle === undefined || x.handle === handle)));
    } else {
      throw new Error(`fake tc: unknown command ${a.join(' ')}`);
    }
  }

  /**
   * Adds someone else's filter (to test drift): by default a direct-action
   * program that lets everything through. Like a new filter in the kernel, it
   * goes first among the filters of its pref.
   */
  addForeign(iface: string, f: Omit<FakeFilter, 'insns' | 'da'> & { insns?: BpfInsn[] }): void {
    const d = this.dev(iface);
    d.filters.unshift({ insns: [{ code: 6, jt: 0, jf: 0, k: 0 }], da: true, ...f });
    d.filters.sort((x, y) => x.chain - y.chain || x.pref - y.pref);
  }
}
