/**
 * The guard benchmark's pure parts (scripts/bench/guard/trust.mjs, legs.mjs): when a phase counts
 * as busy, the order targets run in, median/range summaries, and the request-leg arithmetic.
 */
import { describe, expect, test } from 'vitest';
import { guardLegs, legStats, opaqueLegs } from '../../../scripts/bench/guard/legs.mjs';
import { fmtSpread, judgePhase, orderFor, paired, parseLoadavg, parseProcStat, spread } from '../../../scripts/bench/guard/trust.mjs';

const stat = (user: number, idle: number, steal = 0) => parseProcStat(`cpu  ${user} 0 0 ${idle} 0 0 0 ${steal} 0 0\ncpu0 1 2 3 4\n`);

describe('/proc parsing', () => {
  test('loadavg', () => {
    expect(parseLoadavg('0.83 2.20 3.33 2/311 12345\n')).toEqual({ load1: 0.83, load5: 2.2, load15: 3.33, running: 2, total: 311 });
  });
  test('the cpu line: busy counts user, nice, system, irq, softirq; idle counts iowait', () => {
    expect(parseProcStat('cpu  100 5 20 1000 7 1 2 3 0 0\ncpu0 50 2 10 500 3 0 1 1 0 0\n')).toEqual({ busy: 128, idle: 1007, steal: 3, total: 1138 });
  });
});

describe('judgePhase', () => {
  // 10 s on 2 cores = 2000 jiffies at 100 Hz.
  const base = { startLoad1: 0.5, wallMs: 10_000, ncpu: 2, clkTck: 100 };

  test('quiet: only the benchmark used the CPU', () => {
    const v = judgePhase({ ...base, cpu0: stat(0, 0), cpu1: stat(1500, 500), ownCpuMs: 14_500 });
    expect(v).toMatchObject({ busy: false, reasons: [], foreignPct: 5, stealPct: 0, machineBusyPct: 75 });
  });

  test('busy: other processes took idle CPU during the phase', () => {
    const v = judgePhase({ ...base, cpu0: stat(0, 0), cpu1: stat(1800, 200), ownCpuMs: 10_000 });
    expect(v.busy).toBe(true);
    expect(v.foreignPct).toBe(80);
    expect(v.reasons).toEqual(['other processes used 80 % of a core (> 15 %)']);
  });

  test('busy: load average above the limit when the run started; the limit is an option', () => {
    const args = { ...base, startLoad1: 1.4, cpu0: stat(0, 0), cpu1: stat(100, 1900), ownCpuMs: 1000 };
    expect(judgePhase(args).reasons).toEqual(['load average 1.40 > 1 when the run started']);
    expect(judgePhase(args, { maxLoad: 1.5 }).busy).toBe(false);
  });

  test('busy: the hypervisor stole CPU', () => {
    const v = judgePhase({ ...base, cpu0: stat(0, 0), cpu1: stat(1000, 800, 200), ownCpuMs: 10_000 });
    expect(v.stealPct).toBe(10);
    expect(v.reasons).toEqual(['steal 10.0 % (> 5 %)']);
    expect(judgePhase({ ...base, cpu0: stat(0, 0), cpu1: stat(1000, 800, 200), ownCpuMs: 10_000 }, { maxStealPct: 20 }).busy).toBe(false);
  });

  test('own CPU above the machine figure (rounding of jiffies) is not negative foreign CPU', () => {
    expect(judgePhase({ ...base, cpu0: stat(0, 0), cpu1: stat(100, 1900), ownCpuMs: 1200 }).foreignPct).toBe(0);
  });
});

describe('orderFor: every repetition runs every target, rotated', () => {
  const t = ['guard', 'nginx', 'direct'];
  test('rotation', () => {
    expect([0, 1, 2, 3].map((r) => orderFor(r, t))).toEqual([
      ['guard', 'nginx', 'direct'],
      ['nginx', 'direct', 'guard'],
      ['direct', 'guard', 'nginx'],
      ['guard', 'nginx', 'direct'],
    ]);
  });
  test('over n repetitions each target takes each position once', () => {
    const four = ['a', 'b', 'c', 'd'];
    for (let pos = 0; pos < 4; pos++) expect(new Set([0, 1, 2, 3].map((r) => orderFor(r, four)[pos]))).toEqual(new Set(four));
  });
  test('does not change its input; empty stays empty', () => {
    orderFor(1, t);
    expect(t).toEqual(['guard', 'nginx', 'direct']);
    expect(orderFor(3, [])).toEqual([]);
  });
});

describe('summaries', () => {
  test('spread: median and range of the finite values', () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
    expect(spread([4, 1, NaN, 2, 3, null as unknown as number])).toEqual({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(spread([]).n).toBe(0);
  });

  test('paired: ratio or difference within each repetition, then their spread', () => {
    const rows = [
      { rep: 0, target: 'guard', v: 50 }, { rep: 0, target: 'nginx', v: 100 },
      { rep: 1, target: 'guard', v: 90 }, { rep: 1, target: 'nginx', v: 100 },
      { rep: 2, target: 'nginx', v: 200 }, { rep: 2, target: 'guard', v: 120 },
      { rep: 3, target: 'guard', v: 1 }, // no nginx in rep 3: left out
    ];
    expect(paired(rows, 'guard', 'nginx', (r) => r.v)).toEqual({ median: 0.6, min: 0.5, max: 0.9, n: 3 });
    expect(paired(rows, 'guard', 'nginx', (r) => r.v, 'diff')).toEqual({ median: -50, min: -80, max: -10, n: 3 });
  });

  test('fmtSpread', () => {
    expect(fmtSpread({ median: 0.6, min: 0.5, max: 0.9, n: 3 }, 2)).toBe('0.60 (0.50–0.90)');
    expect(fmtSpread({ median: 7, min: 7, max: 7, n: 1 })).toBe('7');
    expect(fmtSpread({ median: NaN, min: NaN, max: NaN, n: 0 })).toBe('n/a');
  });
});

describe('request legs', () => {
  const marks = { head: 1100, body: 1150, policy: 1200, connected: 1500, written: 1510, upHead: 21_700, upByte: 21_700, clientByte: 21_720, end: 22_000 };
  test('the guard pieces add up to the time to first byte, the simulator wait included', () => {
    const l = guardLegs({ t0: 1000, first: 21_900, marks, simArrived: 1600, simFirstEmit: 21_600 });
    expect(l).toMatchObject({ 'send→head': 100, 'head→body': 50, 'body→policy': 50, 'policy→connected': 300, 'connected→written': 10, 'written→upstream': 90, simWait: 20_000, 'emit→upByte': 100, 'upByte→clientByte': 20, 'clientByte→client': 180, ttfb: 20_900, requestLeg: 600, responseLeg: 300 });
    const pieces = Object.entries(l).filter(([k]) => !['ttfb', 'requestLeg', 'responseLeg'].includes(k)).reduce((a, [, v]) => a + (v as number), 0);
    expect(pieces).toBe(l.ttfb);
  });
  test('a request without a body mark has an empty body piece; missing marks give null', () => {
    const l = guardLegs({ t0: 1000, first: 2000, marks: { head: 1100, policy: 1200 }, simArrived: null, simFirstEmit: null });
    expect(l['head→body']).toBe(0);
    expect(l['body→policy']).toBe(100);
    expect(l['policy→connected']).toBeNull();
    expect(l.requestLeg).toBeNull();
  });
  test('opaque targets: request leg, simulator wait, response leg', () => {
    expect(opaqueLegs({ t0: 0, first: 20_900, simArrived: 400, simFirstEmit: 20_400 })).toEqual({ ttfb: 20_900, requestLeg: 400, simWait: 20_000, responseLeg: 500 });
  });
  test('legStats: nearest-rank p50 and p99 per piece, nulls left out', () => {
    const list = Array.from({ length: 100 }, (_, i) => ({ a: i + 1, b: i % 2 ? null : 5 }));
    expect(legStats(list)).toEqual({ a: { p50: 50, p99: 99, n: 100 }, b: { p50: 5, p99: 5, n: 50 } });
  });
});
