import { describe, expect, test } from 'vitest';
import {
  ingressFilterArgs,
  ingressInSync,
  ingressProgram,
  parseIngress,
  planIngress,
  renderBytecode,
  type IngressSpec,
} from '../../../src/core/ingress-plan.js';
import { expectWgoError } from '../../support/errors.js';
import { TC_ACT_OK, TC_ACT_SHOT, icmpHeader, ipv4Packet, runBpf, tcpHeader } from '../../fakes/packets.js';

const spec: IngressSpec = { iface: 'wgo0', ollamaHost: '198.51.100.10', ollamaPort: 11434 };

const BYTECODE = '24,40 0 0 4294963200,21 0 21 2048,128 0 0 0,53 0 19 20,32 0 0 16,21 0 17 3325256714,40 0 0 6,69 15 0 8191,'
  + '177 0 0 0,135 0 0 0,4 0 0 4,7 0 0 0,128 0 0 0,61 0 9 0,177 0 0 0,48 0 0 9,21 0 2 6,72 0 0 2,21 3 4 11434,21 0 3 1,80 0 0 0,'
  + '21 0 1 3,6 0 0 0,6 0 0 2';

const OK = TC_ACT_OK;
const SHOT = TC_ACT_SHOT;
const ipv4 = ipv4Packet;
const tcp = tcpHeader;
const icmp = icmpHeader;

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
