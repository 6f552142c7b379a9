/**
 * What the fakes' kernel state does to a packet, worked out independently of
 * the code that builds it: a classic BPF interpreter for the tc barrier and a
 * small netfilter walker for the fake iptables tables. Tests judge the
 * reconciler by these verdicts, never by the predicates the repair code uses
 * to decide whether to repair (firewallInSync, ingressInSync).
 */
import type { BpfInsn } from '../../src/core/ingress-plan.js';
import type { Family } from '../../src/core/firewall-plan.js';
import type { FakeFirewall } from './firewall.js';
import type { FakeIngress } from './ingress.js';

export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;

/** Runs a classic BPF program the way the kernel does (only the opcodes the barrier uses; others throw). */
export function runBpf(prog: readonly BpfInsn[], packet: Buffer, protocol: number): number {
  let a = 0;
  let x = 0;
  const load = (off: number, size: 1 | 2 | 4): number | null => {
    if (off === 0xfffff000) return protocol; // SKF_AD_PROTOCOL, host order
    if (off < 0 || off + size > packet.length) return null;
    return size === 1 ? packet.readUInt8(off) : size === 2 ? packet.readUInt16BE(off) : packet.readUInt32BE(off);
  };
  for (let pc = 0; pc < prog.length; pc++) {
    const { code, jt, jf, k } = prog[pc]!;
    let v: number | null = 0;
    switch (code) {
      case 0x28: v = load(k, 2); break;
      case 0x20: v = load(k, 4); break;
      case 0x30: v = load(k, 1); break;
      case 0x48: v = load(x + k, 2); break;
      case 0x50: v = load(x + k, 1); break;
      case 0xb1: {
        const b = load(k, 1);
        if (b === null) return 0; // an out-of-bounds load ends the program with 0
        x = 4 * (b & 0xf);
        continue;
      }
      case 0x80: a = packet.length; continue;
      case 0x07: x = a; continue;
      case 0x87: a = x; continue;
      case 0x04: a = (a + k) >>> 0; continue;
      case 0x35: pc += a >= k ? jt : jf; continue;
      case 0x3d: pc += a >= x ? jt : jf; continue;
      case 0x15: pc += a === k ? jt : jf; continue;
      case 0x45: pc += (a & k) !== 0 ? jt : jf; continue;
      case 0x06: return k;
      default: throw new Error(`unknown opcode ${code}`);
    }
    if (v === null) return 0;
    a = v;
  }
  throw new Error('fell off the end');
}

/** An IPv4 packet from 10.66.0.2: header (with `optionWords` 32-bit option words) and the first bytes of its payload. */
export function ipv4Packet(o: { dst: string; proto: number; payload: number[]; frag?: number; optionWords?: number }): Buffer {
  const ihl = 5 + (o.optionWords ?? 0);
  const h = Buffer.alloc(ihl * 4 + o.payload.length);
  h[0] = 0x40 | ihl;
  h.writeUInt16BE(h.length, 2);
  h.writeUInt16BE(o.frag ?? 0x4000, 6); // DF by default
  h[8] = 64;
  h[9] = o.proto;
  Buffer.from([10, 66, 0, 2]).copy(h, 12);
  Buffer.from(o.dst.split('.').map(Number)).copy(h, 16);
  Buffer.from(o.payload).copy(h, ihl * 4);
  return h;
}
export const tcpHeader = (port: number): number[] => [0xc3, 0x50, port >> 8, port & 255, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02];
export const icmpHeader = (type: number): number[] => [type, 0, 0, 0];

/**
 * What the tunnel interface's ingress does with a packet: no clsact, or no
 * filter, lets everything through; filters run by pref; a direct-action bpf
 * filter's verdict ends the walk; a foreign filter the fake cannot run counts
 * as letting the packet through (the worst case for us).
 */
export async function ingressVerdict(tc: FakeIngress, iface: string, packet: Buffer, protocol = 0x0800): Promise<'pass' | 'drop'> {
  const d = tc.devices.get(iface);
  if (!d?.clsact) return 'pass';
  for (const f of [...d.filters].sort((p, q) => p.chain - q.chain || p.pref - q.pref)) {
    if (f.chain !== 0) continue; // only chain 0 runs without a goto
    if (f.kind !== 'bpf' || !f.da || f.insns.length === 0) return 'pass';
    const v = runBpf(f.insns, packet, protocol);
    if (v === TC_ACT_SHOT) return 'drop';
    if (v === TC_ACT_OK) return 'pass';
  }
  return 'pass';
}

/** A packet as netfilter sees it in FORWARD or INPUT. */
export interface Flow {
  in?: string;
  out?: string;
  src: string;
  dst: string;
  proto: 'tcp' | 'udp' | 'icmp';
  sport?: number;
  dport?: number;
  /** A bare SYN (the first packet of a TCP connection). */
  syn?: boolean;
  ct: 'NEW' | 'ESTABLISHED' | 'RELATED';
}

/** Splits an iptables-save rule into words, keeping a quoted comment as one. */
function words(rule: string): string[] {
  return rule.match(/"[^"]*"|\S+/g) ?? [];
}

function matches(w: string[], flow: Flow, sets: Map<string, Map<string, string>>): { ok: boolean; target: string } {
  let target = '';
  const addr = (cidr: string, ip: string): boolean => cidr.replace(/\/32$/, '') === ip;
  for (let i = 2; i < w.length; i++) {
    const o = w[i]!;
    const v = w[i + 1] ?? '';
    switch (o) {
      case '-i': if (flow.in !== v) return { ok: false, target }; i++; break;
      case '-o': if (flow.out !== v) return { ok: false, target }; i++; break;
      case '-s': if (!addr(v, flow.src)) return { ok: false, target }; i++; break;
      case '-d': if (!addr(v, flow.dst)) return { ok: false, target }; i++; break;
      case '-p': if (flow.proto !== v) return { ok: false, target }; i++; break;
      case '-m': i++; break; // the match module; its options follow
      case '--dport': if (flow.dport !== Number(v)) return { ok: false, target }; i++; break;
      case '--sport': if (flow.sport !== Number(v)) return { ok: false, target }; i++; break;
      case '--tcp-flags':
        if (v !== 'FIN,SYN,RST,ACK' || w[i + 2] !== 'SYN') throw new Error(`netfilter walker: --tcp-flags ${v} ${w[i + 2]} not understood`);
        if (!flow.syn) return { ok: false, target };
        i += 2;
        break;
      case '--match-set': {
        const ip = w[i + 2] === 'src' ? flow.src : flow.dst;
        if (!sets.get(v)?.has(ip)) return { ok: false, target };
        i += 2;
        break;
      }
      case '--ctstate': if (!v.split(',').includes(flow.ct)) return { ok: false, target }; i++; break;
      case '--comment': i++; break;
      case '-j': target = v; i = w.length; break;
      default: throw new Error(`netfilter walker: option ${o} not understood in: ${w.join(' ')}`);
    }
  }
  return { ok: true, target };
}

/**
 * Walks a fake iptables table from a built-in chain (FORWARD or INPUT) for one
 * packet: jumps into user chains, RETURN, and the chain's policy at the end.
 */
export function firewallVerdict(fw: FakeFirewall, family: Family, hook: 'FORWARD' | 'INPUT', flow: Flow): 'ACCEPT' | 'DROP' | 'REJECT' {
  const table = fw.tables[family];
  const walk = (chain: string, depth: number): 'ACCEPT' | 'DROP' | 'REJECT' | null => {
    if (depth > 8) throw new Error('netfilter walker: jump loop');
    for (const rule of table.get(chain)?.rules ?? []) {
      const m = matches(words(rule), flow, fw.sets);
      if (!m.ok || !m.target) continue;
      if (m.target === 'ACCEPT' || m.target === 'DROP' || m.target === 'REJECT') return m.target;
      if (m.target === 'RETURN') return null;
      const r = walk(m.target, depth + 1);
      if (r) return r;
    }
    return null;
  };
  return walk(hook, 0) ?? (table.get(hook)!.policy as 'ACCEPT' | 'DROP');
}
