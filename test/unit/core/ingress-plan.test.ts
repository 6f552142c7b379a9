import { describe, expect, test } from 'vitest';
import {
  ingressFilterArgs,
  ingressInSync,
  ingressProgram,
  parseIngress,
  planIngress,
  renderBytecode,
  type BpfInsn,
  type IngressSpec,
} from '../../../src/core/ingress-plan.js';
import { expectWgoError } from '../helpers.js';

const spec: IngressSpec = { iface: 'wgo0', ollamaHost: '198.51.100.10', ollamaPort: 11434 };

const BYTECODE = '24,40 0 0 4294963200,21 0 21 2048,128 0 0 0,53 0 19 20,32 0 0 16,21 0 17 3325256714,40 0 0 6,69 15 0 8191,'
  + '177 0 0 0,135 0 0 0,4 0 0 4,7 0 0 0,128 0 0 0,61 0 9 0,177 0 0 0,48 0 0 9,21 0 2 6,72 0 0 2,21 3 4 11434,21 0 3 1,80 0 0 0,'
  + '21 0 1 3,6 0 0 0,6 0 0 2';

/** A classic BPF interpreter for the instructions the program uses (what the kernel runs). */
function runBpf(prog: readonly BpfInsn[], packet: Buffer, protocol: number): number {
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

const OK = 0;
const SHOT = 2;

/** An IPv4 packet: header (with `optionWords` 32-bit option words) and the first bytes of its payload. */
function ipv4(o: { dst: string; proto: number; payload: number[]; frag?: number; optionWords?: number }): Buffer {
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
const tcp = (port: number): number[] => [0xc3, 0x50, port >> 8, port & 255, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02];
const icmp = (type: number): number[] => [type, 0, 0, 0];

describe('ingressProgram', () => {
  test('renders the exact bytecode tc is given', () => {
    expect(renderBytecode(ingressProgram(spec))).toBe(BYTECODE);
  });

  test('the argv installs it at pref 1, handle 1, direct-action', () => {
    expect(ingressFilterArgs(spec)).toEqual([
      'filter', 'replace', 'dev', 'wgo0', 'ingress', 'pref', '1', 'handle', '0x1', 'protocol', 'all', 'bpf', 'bytecode', BYTECODE, 'da',
    ]);
  });

  test('every jump lands inside the program and it ends in a return', () => {
    const p = ingressProgram({ ollamaHost: '10.0.0.1', ollamaPort: 443 });
    p.forEach((x, i) => {
      if ((x.code & 7) !== 5) return; // BPF_JMP only
      expect(i + 1 + x.jt).toBeLessThan(p.length);
      expect(i + 1 + x.jf).toBeLessThan(p.length);
    });
    expect(p.at(-1)!.code).toBe(0x06);
  });

  const cases: [string, Buffer, number, number][] = [
    ['TCP SYN to the service', ipv4({ dst: '198.51.100.10', proto: 6, payload: tcp(11434) }), 0x0800, OK],
    ['TCP to the service with IP options', ipv4({ dst: '198.51.100.10', proto: 6, payload: tcp(11434), optionWords: 2 }), 0x0800, OK],
    ['TCP to another port of the service host', ipv4({ dst: '198.51.100.10', proto: 6, payload: tcp(22) }), 0x0800, SHOT],
    ['TCP to the service port of another host', ipv4({ dst: '198.51.100.20', proto: 6, payload: tcp(11434) }), 0x0800, SHOT],
    ['UDP to the service port', ipv4({ dst: '198.51.100.10', proto: 17, payload: tcp(11434) }), 0x0800, SHOT],
    ['ICMP echo to the service host', ipv4({ dst: '198.51.100.10', proto: 1, payload: icmp(8) }), 0x0800, SHOT],
    ['ICMP destination unreachable to the service host', ipv4({ dst: '198.51.100.10', proto: 1, payload: icmp(3) }), 0x0800, OK],
    ['ICMP destination unreachable to another host', ipv4({ dst: '198.51.100.20', proto: 1, payload: icmp(3) }), 0x0800, SHOT],
    ['a later fragment to the service host', ipv4({ dst: '198.51.100.10', proto: 6, payload: tcp(11434), frag: 0x0010 }), 0x0800, SHOT],
    ['a first fragment (MF) to the service', ipv4({ dst: '198.51.100.10', proto: 6, payload: tcp(11434), frag: 0x2000 }), 0x0800, OK],
    ['IPv6', Buffer.alloc(60, 0x60), 0x86dd, SHOT],
    ['ARP', Buffer.alloc(28), 0x0806, SHOT],
    ['a truncated IPv4 header', Buffer.from([0x45, 0, 0, 20]), 0x0800, SHOT],
    ['TCP to the service cut short before the ports', ipv4({ dst: '198.51.100.10', proto: 6, payload: [0xc3, 0x50, 0x2c] }), 0x0800, SHOT],
    ['ICMP to the service host with no ICMP header', ipv4({ dst: '198.51.100.10', proto: 1, payload: [] }), 0x0800, SHOT],
    ['an IPv4 header claiming 60 bytes in a 24-byte packet', ipv4({ dst: '198.51.100.10', proto: 6, payload: tcp(11434) }).subarray(0, 24).fill(0x4f, 0, 1), 0x0800, SHOT],
  ];
  test.each(cases)('%s', (_what, packet, protocol, verdict) => {
    const r = runBpf(ingressProgram(spec), packet, protocol);
    expect(r).toBe(verdict);
  });
});

const OURS = { protocol: 'all', pref: 1, kind: 'bpf', chain: 0, options: { handle: '0x1', 'direct-action': true, not_in_hw: true, bytecode: { length: 24, insns: ingressProgram(spec) } } };
const HEAD = { protocol: 'all', pref: 1, kind: 'bpf', chain: 0 };
const CLSACT = JSON.stringify([{ kind: 'clsact', handle: 'ffff:', parent: 'ffff:fff1', options: {} }]);
const NOQUEUE = JSON.stringify([{ kind: 'noqueue', handle: '0:', root: true, refcnt: 2, options: {} }]);
const FOREIGN_U32 = [{ protocol: 'ip', pref: 5, kind: 'u32', chain: 0 }, { protocol: 'ip', pref: 5, kind: 'u32', chain: 0, options: { fh: '800:', ht_divisor: 1 } }];
const BYTECODE_ARGS = ingressFilterArgs(spec);

describe('parseIngress / ingressInSync / planIngress', () => {
  const table: [string, string, unknown[], boolean, string[][]][] = [
    ['in place', CLSACT, [HEAD, OURS], true, []],
    ['nothing yet (no qdisc)', NOQUEUE, [], false, [['qdisc', 'add', 'dev', 'wgo0', 'clsact'], BYTECODE_ARGS]],
    ['qdisc without filter', CLSACT, [], false, [BYTECODE_ARGS]],
    ['a program for another service address', CLSACT,
      [HEAD, { ...OURS, options: { ...OURS.options, bytecode: { length: 24, insns: ingressProgram({ ...spec, ollamaHost: '198.51.100.11' }) } } }], false, [BYTECODE_ARGS]],
    ['our program without direct-action', CLSACT, [HEAD, { ...OURS, options: { ...OURS.options, 'direct-action': false } }], false, [BYTECODE_ARGS]],
    ['another handle before ours at pref 1', CLSACT, [HEAD, { ...OURS, options: { ...OURS.options, handle: '0x2' } }, OURS], false,
      [BYTECODE_ARGS, ['filter', 'del', 'dev', 'wgo0', 'ingress', 'pref', '1', 'handle', '0x2', 'protocol', 'all', 'bpf']]],
    ['another filter after ours', CLSACT, [HEAD, OURS, ...FOREIGN_U32], false, [BYTECODE_ARGS, ['filter', 'del', 'dev', 'wgo0', 'ingress', 'pref', '5']]],
    ['a filter in another chain', CLSACT, [HEAD, OURS, { ...FOREIGN_U32[1], chain: 7 }], false,
      [BYTECODE_ARGS, ['filter', 'del', 'dev', 'wgo0', 'ingress', 'chain', '7', 'pref', '5']]],
    ['someone else holds pref 1', CLSACT, [{ ...FOREIGN_U32[0], pref: 1 }, { ...FOREIGN_U32[1], pref: 1 }], false,
      [['filter', 'del', 'dev', 'wgo0', 'ingress', 'pref', '1'], BYTECODE_ARGS]],
  ];
  test.each(table)('%s', (_what, qdisc, filters, inSync, plan) => {
    const state = parseIngress(qdisc, JSON.stringify(filters));
    expect(ingressInSync(state, spec)).toBe(inSync);
    expect(planIngress(state, spec)).toEqual(plan);
  });

  test('reads the exact text tc prints', () => {
    const text = '[{"protocol":"all","pref":1,"kind":"bpf","chain":0},{"protocol":"all","pref":1,"kind":"bpf","chain":0,"options":{"handle":"0x1","direct-action":true,"not_in_hw":true,"bytecode":{"length":1,"insns":[{"code":6,"jt":0,"jf":0,"k":2}]}}}]';
    expect(parseIngress('[{"kind":"clsact","handle":"ffff:","parent":"ffff:fff1","options":{}}]', text)).toEqual({
      clsact: true,
      filters: [
        { chain: 0, pref: 1, kind: 'bpf', protocol: 'all', handle: null, directAction: false, insns: null },
        { chain: 0, pref: 1, kind: 'bpf', protocol: 'all', handle: '0x1', directAction: true, insns: [{ code: 6, jt: 0, jf: 0, k: 2 }] },
      ],
    });
  });

  test('empty output is an empty list; anything but a JSON array is an error', () => {
    expect(parseIngress('', '')).toEqual({ clsact: false, filters: [] });
    expect(() => parseIngress('Cannot find device', '[]')).toThrow(/tc qdisc output: not JSON/);
    expect(() => parseIngress('[]', '{"a":1}')).toThrow(/tc filter output: not a JSON array/);
    for (const [q, f] of [['x', '[]'], ['[]', '{}']]) expect(expectWgoError(() => parseIngress(q!, f!), 'INTERNAL').kind).toBe('internal');
  });
});
